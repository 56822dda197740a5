"""The soak: one writing guest migrated back and forth, checked each round.

A round moves the guest to the other node with nova's own flag set for the
storage (block migration on ``local``, plain live migration on shared
storage), lets it write there, pauses it, reads its disk back and lets the
oracle judge every write acknowledged so far; then the guest resumes and
the next round starts.  The first round that is not INTACT ends the soak
and keeps its evidence (console and flattened disk) for a person to read.
"""

import dataclasses
import os
import time

from migration_tempest_plugin import flags
from migration_tempest_plugin.lab import matrix
from migration_tempest_plugin.lab import pipeline
from migration_tempest_plugin.lab import results
from migration_tempest_plugin.lab import storage as storagelib
from migration_tempest_plugin import storage_modes


@dataclasses.dataclass
class SoakResult:
    storage: str
    rounds_wanted: int
    rounds_clean: int = 0
    verdict: results.Verdict = results.Verdict.INTACT  # of the last round
    message: str = ''
    acked_writes: int = 0
    seconds: float = 0.0
    migration_s: list = dataclasses.field(default_factory=list)
    evidence: list = dataclasses.field(default_factory=list)

    @property
    def rounds_per_minute(self):
        return 60.0 * self.rounds_clean / self.seconds if self.seconds else 0

    def summary(self):
        if self.verdict == results.Verdict.INTACT:
            head = '%d rounds clean' % self.rounds_clean
        else:
            head = '%s in round %d (after %d clean)' % (
                self.verdict, self.rounds_clean + 1, self.rounds_clean)
        mean = (sum(self.migration_s) / len(self.migration_s)
                if self.migration_s else 0)
        return ('soak %s: %s in %.0fs, %.1f rounds/min, %d acknowledged '
                'writes, mean migration %.1fs%s' % (
                    self.storage, head, self.seconds, self.rounds_per_minute,
                    self.acked_writes, mean,
                    '' if self.verdict == results.Verdict.INTACT
                    else '; ' + self.message))


def nova_flag_set(storage):
    """nova 34's set for a guest on `storage` with default options: a block
    migration where each node has its own disk."""
    block = not storagelib.mode(storage).shared
    return matrix.FlagSet(
        'nova-block' if block else 'nova-live',
        flags.nova_flags(flags.NovaOptions(), block_migration=block))


def soak_storages():
    """The modes where nova's own set is expected to move the guest (on
    shared-nolock libvirt refuses nova's live set: it does not know bindfs
    as shared, so there is nothing to soak there)."""
    return tuple(name for name in storage_modes.NAMES
                 if storagelib.expect(nova_flag_set(name).flags,
                                      name).outcome is flags.Outcome.INTACT)


SOAK_STORAGES = soak_storages()


class Soak(object):
    """Runs the soak for one storage mode on a CaseRunner's lab."""

    def __init__(self, runner, storage, rounds, progress=print):
        if storage not in SOAK_STORAGES:
            raise results.CaseError(
                'soak runs on %s, not %r: nova refuses to move a guest on '
                'it' % (' or '.join(SOAK_STORAGES), storage))
        self.runner = runner
        self.storage = storage
        self.rounds = rounds
        self.progress = progress
        self.case = matrix.Case(storage, nova_flag_set(storage))

    def run(self):
        """The pipeline's steps, one boot and many migrations: each round
        migrates to the other node and judges the disk there."""
        r = self.runner
        result = SoakResult(self.storage, self.rounds)
        nodes = list(r.lab.nodes)
        started = time.monotonic()
        try:
            with pipeline.Guest(r, self.case) as guest:
                guest.boot(nodes[0])
                here = 0
                for n in range(self.rounds):
                    there = 1 - here
                    outcome = r.migrator.migrate(
                        self.case, guest.inst, guest.dom, nodes[there],
                        guest.conn(nodes[there]))
                    if not outcome.migrated:
                        raise results.CaseError(
                            'round %d: %s -> %s refused: %s' % (
                                n + 1, nodes[here].name, nodes[there].name,
                                outcome.error))
                    result.migration_s.append(round(outcome.seconds, 2))
                    if not storagelib.mode(self.storage).shared:
                        # nova removes the source's files after the move
                        nodes[here].run(['rm', '-f', guest.inst.disk])
                    here = there
                    report = self._check_round(guest.inst, guest.on(
                        nodes[here]), nodes[here], result)
                    result.acked_writes = report.acked_writes
                    if report.verdict != results.Verdict.INTACT:
                        result.verdict, result.message = (
                            results.Verdict(report.verdict), report.message)
                        break
                    result.rounds_clean += 1
                    self.progress('soak %s: round %d/%d %s -> %s INTACT, '
                                  'migration %.1fs, %d writes acknowledged'
                                  % (self.storage, n + 1, self.rounds,
                                     nodes[1 - here].name, nodes[here].name,
                                     outcome.seconds, report.acked_writes))
        except results.CaseError as exc:
            result.verdict, result.message = results.Verdict.ERROR, str(exc)
        finally:
            result.seconds = time.monotonic() - started
        return result

    def _check_round(self, inst, dom, node, result):
        """Let the guest write where it now runs, pause it, judge every
        acknowledged write, resume it.  A round that is not INTACT keeps
        the disk and the console as they were, for a person to read."""
        r = self.runner
        r.wait_acks(inst, r.ack_count(inst) + r.settings.acks_after, 30,
                    'writing after the migration')
        dom.suspend()
        try:
            report, evidence = r.judge(inst, node, os.path.join(
                r.work_dir, 'soak-evidence', inst.name))
            result.evidence = evidence
            return report
        finally:
            dom.resume()
