"""One case pipeline: boot a writing guest and wait for its writes, one
migration with a typed outcome (with its fault, if any), judge the disk
where the guest ran last, and clean up whatever happened.  The matrix, the
controls, the fault cases and the soak are configurations of it.
"""

import contextlib
import dataclasses
import os
import threading
import time

from tempest.lib.common.utils import test_utils

from migration_tempest_plugin import flags
from migration_tempest_plugin.integrity import blocks
from migration_tempest_plugin.integrity import checker
from migration_tempest_plugin.integrity import history as historylib
from migration_tempest_plugin.lab import fault_run
from migration_tempest_plugin.lab import instance as instancelib
from migration_tempest_plugin.lab import migration
from migration_tempest_plugin.lab import results
from migration_tempest_plugin import runtime as rt

Verdict = results.Verdict
CaseError = results.CaseError

# The work region of a zeroing guest: 1 MiB, rewritten every ~250 writes.
ZEROING_WORK_BLOCKS = 256


class NodesLink(object):
    """The network and the libvirtds between the two nodes, which every
    migration uses.  Cases share it; a case whose fault disturbs it (a cut,
    a killed libvirtd) holds it alone.  A case holds it from its migration
    to its end, so other cases boot their guests meanwhile; a case that
    holds it alone hands it back as soon as the link is whole again
    (release_alone), however long its migration goes on.  A case that
    wants it alone is served before any case that asks after it."""

    def __init__(self):
        self._cond = threading.Condition()
        self._sharing = 0
        self._alone = False
        self._waiting_alone = 0

    @contextlib.contextmanager
    def held(self, alone=False):
        with self._cond:
            if alone:
                self._waiting_alone += 1
                self._cond.wait_for(
                    lambda: not self._alone and not self._sharing)
                self._waiting_alone -= 1
                self._alone = True
            else:
                self._cond.wait_for(
                    lambda: not self._alone and not self._waiting_alone)
                self._sharing += 1
        try:
            yield
        finally:
            if alone:
                self.release_alone()
            else:
                with self._cond:
                    self._sharing -= 1
                    self._cond.notify_all()

    def release_alone(self):
        """The link is whole again (idempotent; one case at a time holds
        it alone, so only that case may call this)."""
        with self._cond:
            self._alone = False
            self._cond.notify_all()


@dataclasses.dataclass
class Settings:
    bandwidth_mib: int = 0        # cap for disk-copying cases, 0 = none
    migration_timeout_s: float = 90.0
    boot_timeout_s: float = 60.0
    # acknowledged writes before the migration, and after it wherever the
    # guest runs: the tempest tests' numbers
    acks_before: int = blocks.ACKS_BEFORE_MIGRATION
    acks_after: int = blocks.ACKS_AFTER_MIGRATION
    post_copy_after_s: float = 1.0


class Guest(object):
    """One booted guest of a case: its instance, a connection per node,
    its domain where it runs now.  Leaving the `with` destroys it on every
    node, removes its files and closes the connections, always."""

    def __init__(self, runner, case):
        self.runner = runner
        self.inst = runner.instance(case)
        self._conns = {}
        self.dom = None

    def conn(self, node):
        if node.name not in self._conns:
            self._conns[node.name] = self.runner.connect(node)
        return self._conns[node.name]

    def boot(self, node):
        """Create its disks on `node`, start it there, and wait for the
        writes a migration must find."""
        self.inst.create_disks(node)
        self.dom = self.conn(node).createXML(self.inst.domain_xml(), 0)
        self.runner.wait_acks(self.inst, self.runner.settings.acks_before,
                              self.runner.settings.boot_timeout_s, 'boot')

    def on(self, node):
        """Its domain as `node` knows it (where it now runs)."""
        self.dom = self.conn(node).lookupByUUIDString(self.inst.uuid)
        return self.dom

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        conns = list(self._conns.values())
        try:
            migration.destroy_everywhere(self.runner.libvirt, self.inst.uuid,
                                         conns)
            self.inst.remove_files()
        finally:
            for conn in conns:
                conn.close()


class CaseRunner(object):
    """Runs cases on a Lab that is up."""

    def __init__(self, lab, guest, layout, work_dir, settings=None,
                 libvirt=None):
        if libvirt is None:
            import libvirt  # the lab needs it; the flag model does not
            # Errors reach the report through exceptions; keep stderr
            # quiet.
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        self.libvirt = libvirt
        self.lab = lab
        self.guest = guest
        self.layout = layout
        self.work_dir = work_dir
        self.settings = settings or Settings()
        self.consoles = os.path.join(work_dir, 'consoles')
        os.makedirs(self.consoles, exist_ok=True)
        self.src, self.dst = lab.nodes[0], lab.nodes[1]
        self.link = NodesLink()
        self.migrator = migration.Migrator(libvirt, self.settings)
        self._zeroing_layouts = {}

    def layout_for(self, case):
        """The runner's layout, or, for a guest that zeroes and discards
        blocks, one whose label asks for it, with its own image id (its
        own base image) and a small work region: the guest then rewrites
        each block many times per case, so a discarded block that shows
        data older than what it held before the discard can be seen."""
        zero_every = case.disks.zero_every if case.disks else 0
        if not zero_every:
            return self.layout
        if zero_every not in self._zeroing_layouts:
            self._zeroing_layouts[zero_every] = blocks.make_layout(
                self.layout.static_count,
                min(self.layout.work_count, ZEROING_WORK_BLOCKS),
                step=self.layout.step, zero_every=zero_every)
        return self._zeroing_layouts[zero_every]

    def instance(self, case):
        return instancelib.Instance(self.lab, case.storage, self.guest,
                                    self.layout_for(case),
                                    console_dir=self.consoles,
                                    **case.instance_options())

    def prepare(self, cases):
        """Write the base images once, before cases run side by side."""
        done = set()
        for case in cases:
            probe = self.instance(case)
            key = (probe.base_storage, probe.layout.image_id)
            if key in done:
                continue
            done.add(key)
            for node in probe.nodes_with_own_base():
                probe.ensure_base(node)

    def connect(self, node):
        return self.libvirt.open(node.uri)

    # -- the pipeline -------------------------------------------------------

    def run(self, case):
        with contextlib.ExitStack() as link:
            return self._run(case, link)

    def migrate(self, case, guest, dst_conn):
        """The case's one migration, with its fault if it has one."""
        if case.fault:
            return fault_run.run(self, case, guest.inst, guest.dom, dst_conn)
        return self.migrator.migrate(case, guest.inst, guest.dom, self.dst,
                                     dst_conn)

    def _run(self, case, link):
        """One case; `link` holds the nodes' link, taken after the boot,
        until the case has cleaned up after itself."""
        started = time.monotonic()
        outcome = results.MigrationOutcome()
        times = {'boot_s': 0.0, 'link_wait_s': 0.0}
        with Guest(self, case) as guest:
            try:
                guest.boot(self.src)
                times['boot_s'] = time.monotonic() - started
                link.enter_context(self.link.held(
                    alone=bool(case.fault and case.fault.disturbs_link)))
                times['link_wait_s'] = (time.monotonic() - started
                                        - times['boot_s'])
                dst_conn = guest.conn(self.dst)
                acks_at_start = self.ack_count(guest.inst)
                if case.flag_set.paused:
                    guest.dom.suspend()
                outcome = self.migrate(case, guest, dst_conn)
                acks_at_end = self.ack_count(guest.inst)
                last = self.dst if outcome.migrated else self.src
                self._write_on(case, guest, last, acks_at_end, outcome)
                # Read where the guest ran last, as its host would: another
                # node's GlusterFS client may serve stale pages (the soak
                # found it).
                verify_started = time.monotonic()
                report, _evidence = self.judge(guest.inst, last)
                times['verify_s'] = round(time.monotonic() - verify_started,
                                          3)
            except CaseError as exc:
                # A fault's notes say what the stack did before the harness
                # gave up (a post-copy recovery that failed, say).
                return self._result(case, Verdict.ERROR, '; '.join(
                    m for m in (str(exc), outcome.note) if m), started,
                    outcome, **times)
        verdict, message = self._verdict(case, report, outcome)
        return self._result(
            case, verdict, message, started, outcome, oracle=report,
            writes_during_migration=acks_at_end - acks_at_start, **times)

    def _write_on(self, case, guest, node, acks_at_end, outcome):
        """The guest must go on writing where it now runs; then it stops
        there.  A guest the stack stopped is said in the outcome."""
        dom = guest.on(node)
        if case.flag_set.paused:
            dom.resume()
        try:
            self.wait_acks(guest.inst, acks_at_end + self.settings.acks_after,
                           30, 'writing after the migration', dom=dom)
        except CaseError as exc:
            if dom.isActive():   # running, yet silent: not a verdict
                raise CaseError('%s; the domain is %s' % (
                    exc, migration.state_text(self.libvirt, dom))) from exc
            # The stack stopped the guest: judge its disk all the same.
            outcome.stopped = ('the guest was stopped after the migration '
                               '(domain %s)'
                               % migration.state_text(self.libvirt, dom))
        if dom.isActive():
            dom.destroy()

    @staticmethod
    def _verdict(case, report, outcome):
        if report.verdict == Verdict.INTACT and outcome.stopped:
            return Verdict.STOPPED, '; '.join(
                m for m in (outcome.stopped, outcome.error, outcome.note)
                if m)
        if report.verdict == Verdict.INTACT and case.fault:
            return fault_run.fault_verdict(outcome)
        if report.verdict == Verdict.INTACT and not outcome.migrated:
            return Verdict.REFUSED, outcome.error
        message = report.message
        if outcome.error and report.verdict != Verdict.INTACT:
            message += '; migration: ' + outcome.error
        return Verdict(report.verdict), message

    def error_result(self, case, exc):
        """A case the harness could not run to its end."""
        return self._result(case, Verdict.ERROR, '%s: %s' % (
            type(exc).__name__, exc), time.monotonic(),
            results.MigrationOutcome())

    @staticmethod
    def _result(case, verdict, message, started, outcome, **fields):
        expectation = case.expectation()
        agrees = (case.fault.agrees(verdict) if case.fault
                  else results.agreement(expectation, verdict, message))
        finding = '' if agrees else results.finding_text(
            expectation, verdict, message)
        if case.fault and verdict != Verdict.ERROR and not outcome.fired:
            # The case tested nothing: never an agreement.
            agrees = False
            finding = 'the fault was never injected (%s)' % message
        for name in ('boot_s', 'link_wait_s'):
            fields[name] = round(fields.get(name, 0.0), 2)
        return results.Result(
            storage=case.storage, flag_set=case.name,
            flags=flags.names(case.flags), verdict=Verdict(verdict),
            expected=str(expectation),
            expected_outcome=expectation.outcome.value, agrees=agrees,
            message=message, control=case.control, migration=outcome,
            duration_s=round(time.monotonic() - started, 2),
            finding=finding, **fields)

    def judge(self, inst, node, evidence_dir=None):
        """Read the guest's disk on `node` (where a host running it would
        read it) and let the oracle judge it against the console.  Returns
        (report, evidence): a verdict other than INTACT keeps the flattened
        disk and the console under `evidence_dir` when one is given."""
        raw = inst.flatten(node, os.path.join(self.work_dir,
                                              inst.name + '.raw'))
        console = inst.console_text()
        try:
            with open(raw, 'rb') as f:
                report = checker.check(historylib.parse(console), f.read())
            if report.verdict == Verdict.INTACT or not evidence_dir:
                return report, []
            os.makedirs(evidence_dir, exist_ok=True)
            evidence = [os.path.join(evidence_dir, 'disk.raw'),
                        os.path.join(evidence_dir, 'console.log')]
            os.replace(raw, evidence[0])
            rt.write_file(evidence[1], console)
            return report, evidence
        finally:
            if os.path.exists(raw):
                os.unlink(raw)

    # -- the guest's console ------------------------------------------------

    def ack_count(self, inst):
        return historylib.ack_count(inst.console_text())

    def wait_acks(self, inst, count, timeout, what, dom=None):
        """Wait until the guest has acknowledged `count` writes; with
        `dom`, stop waiting as soon as that domain is not running."""
        def written():
            text = inst.console_text()
            fatal = historylib.fatal_line(text)
            if fatal:
                raise CaseError('guest workload failed: %s' % fatal)
            if historylib.ack_count(text) >= count:
                return True
            if dom is not None and not dom.isActive():
                raise CaseError('the guest stopped (%s): %d of %d '
                                'acknowledged blocks (%s)' % (
                                    migration.state_text(self.libvirt, dom),
                                    historylib.ack_count(text), count, what))
            return False
        if test_utils.call_until_true(written, timeout, 0.1):
            return
        raise CaseError('guest wrote %d of %d acknowledged blocks within '
                        '%ds (%s)' % (self.ack_count(inst), count, timeout,
                                      what))
