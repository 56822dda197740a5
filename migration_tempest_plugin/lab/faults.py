"""Faults during the migration: the lab's nemesis beyond the flags.

Each fault is a matrix case: a flag set on a storage mode, a phase of the
migration (``disk``: the disk mirror has begun; ``ram``: the memory copy
has begun), what the nemesis does then, and the outcome written down
before the first run, with where that expectation comes from.  The oracle
judges the disk as in every case; a fault case also asserts where the guest
runs afterwards and that nothing of it is left on the destination.
"""

import dataclasses
import os
import signal
import threading

import psutil
from tempest.lib.common.utils import test_utils

from migration_tempest_plugin import flags
from migration_tempest_plugin.lab import matrix

# RAM and disk share one cap, so that every phase lasts long enough for the
# nemesis to act inside it (128 MiB of RAM at 16 MiB/s: about 8 s).
FAULT_BANDWIDTH_MIB = 16
DESTINATION_CLEAN_TIMEOUT_S = 60


@dataclasses.dataclass
class Fault:
    name: str
    phase: str                  # 'disk' or 'ram'
    expectation: flags.Expectation
    retry: bool = False         # migrate again after the fault
    exclusive: bool = False     # disturbs the whole lab: run alone
    # Verdicts that agree with the expectation; by default only its own.
    also_accepted: tuple = ()

    def agrees(self, verdict):
        return verdict in ((self.expectation.outcome.value,)
                           + self.also_accepted)

    def inject(self, runner, inst, dom, dst_conn):
        """Act on the running migration; return a note for the report."""
        raise NotImplementedError

    def restore(self, runner):
        """Undo what inject did to the lab (not to the guest)."""

    # -- one run ----------------------------------------------------------

    def _due(self, stats):
        key = 'disk_processed' if self.phase == 'disk' else \
            'memory_processed'
        return stats.get(key, 0) > 0

    def run(self, runner, case, inst, dom, dst_conn):
        """The migration with this fault; the outcome as CaseRunner's
        _migrate gives it, plus fired, note, destination_clean and, after a
        retry, first_error."""
        fired = threading.Event()
        notes = []

        def on_stats(stats):
            if fired.is_set() or not self._due(stats):
                return
            fired.set()
            try:
                notes.append(self.inject(runner, inst, dom, dst_conn) or '')
            except Exception as exc:  # reported, not raised in the monitor
                notes.append('the fault could not be injected: %s' % exc)
        try:
            outcome = runner.migrate(case, inst, dom, dst_conn,
                                     on_stats=on_stats,
                                     bandwidth_mib=FAULT_BANDWIDTH_MIB)
        finally:
            self.restore(runner)
        outcome['fired'] = fired.is_set()
        outcome['note'] = '; '.join(n for n in notes if n)
        outcome['destination_clean'] = (
            outcome['migrated'] or destination_clean(runner, inst))
        if self.retry and not outcome['migrated']:
            first = outcome
            outcome = runner.migrate(case, inst, dom, dst_conn)
            outcome.update(fired=first['fired'], note=first['note'],
                           first_error=first['error'],
                           destination_clean=first['destination_clean'])
        return outcome

    def verdict(self, outcome):
        """The verdict of a run whose disk the oracle found intact."""
        said = []
        if not outcome['fired']:
            said.append('the migration ended before the fault was due')
        if outcome.get('note'):
            said.append(outcome['note'])
        if outcome.get('first_error'):
            said.append('first attempt: ' + outcome['first_error'])
        if outcome['migrated']:
            return 'INTACT', '; '.join(said)
        said.insert(0, outcome['error'])
        if not outcome['destination_clean']:
            return 'LEFT-BEHIND', '; '.join(
                said + ['the guest is still defined on the destination'])
        return 'FAILED-SAFE', '; '.join(said)


def destination_clean(runner, inst):
    """True once the destination no longer knows the guest (its libvirtd
    cleans up an incoming migration that failed)."""
    conn = runner.connect(runner.dst)   # a fresh one: the fault may have
    try:                                 # broken the old connection

        def gone():
            try:
                conn.lookupByUUIDString(inst.uuid)
            except runner.libvirt.libvirtError:
                return True
            return False
        return test_utils.call_until_true(gone, DESTINATION_CLEAN_TIMEOUT_S,
                                          1)
    finally:
        conn.close()


def _kill(pid, must_contain, start=None):
    """SIGKILL `pid` if it still is the process we mean: its command line
    names `must_contain` and, when known, it started at `start`."""
    proc = psutil.Process(pid)
    if must_contain not in ' '.join(proc.cmdline()) or (
            start is not None and proc.create_time() != start):
        raise matrix.CaseError('pid %d is not %s' % (pid, must_contain))
    proc.send_signal(signal.SIGKILL)


class AbortOnSource(Fault):
    def inject(self, runner, inst, dom, dst_conn):
        dom.abortJob()
        return ''


class DestroyOnDestination(Fault):
    def inject(self, runner, inst, dom, dst_conn):
        incoming = dst_conn.lookupByUUIDString(inst.uuid)
        note = ''
        try:
            incoming.abortJob()
            note = 'abortJob on the destination was accepted'
        except runner.libvirt.libvirtError as exc:
            note = 'abortJob on the destination: %s' % \
                exc.get_error_message()
        incoming.destroy()
        return note


class KillDestinationQemu(Fault):
    def inject(self, runner, inst, dom, dst_conn):
        pid_file = os.path.join(runner.dst.node_dir('run'), 'libvirt',
                                'qemu', inst.name + '.pid')
        with open(pid_file) as f:
            _kill(int(f.read().strip()), inst.name)
        return ''


class KillDestinationLibvirtd(Fault):
    def inject(self, runner, inst, dom, dst_conn):
        daemon = runner.dst.libvirtd_daemon()
        if not daemon:
            raise matrix.CaseError('no libvirtd running on %s'
                                   % runner.dst.name)
        _kill(daemon.pid, 'libvirtd', daemon.create_time())
        return ''

    def restore(self, runner):
        runner.dst.start_libvirtd()
        runner.dst.wait_libvirtd()


class CutNetwork(Fault):
    """Both nodes drop each other's packets (blackhole routes in their own
    namespaces) for CUT_SECONDS, then the network comes back: a partition,
    not a lost node.  The host and the storage node reach both throughout.
    """

    CUT_SECONDS = 20

    def _routes(self, runner, verb):
        for node, other in ((runner.src, runner.dst),
                            (runner.dst, runner.src)):
            node.run(['ip', 'route', verb, 'blackhole',
                      other.address + '/32'], check=(verb == 'add'))

    def inject(self, runner, inst, dom, dst_conn):
        self._routes(runner, 'add')
        timer = threading.Timer(self.CUT_SECONDS, self._routes,
                                args=(runner, 'del'))
        timer.daemon = True
        timer.start()
        return 'network cut for %ds' % self.CUT_SECONDS

    def restore(self, runner):
        self._routes(runner, 'del')


def _safe(reason):
    return flags.Expectation(flags.Outcome.FAILED_SAFE, reason)


def fault_cases():
    """Every fault case, each with its expected outcome and its source."""
    by_name = {fs.name: fs for fs in matrix.flag_sets()}
    block, live = by_name['nova-block'], by_name['nova-live']
    return [
        matrix.Case('local', block, fault=AbortOnSource(
            'abort-source', 'disk', flags.Expectation(
                flags.Outcome.INTACT,
                'virDomainAbortJob cancels the mirror and the migration; the '
                'guest runs on at the source, the destination drops the '
                'incoming domain, and a second migration succeeds (nova '
                'live_migration_abort, 2.24)'), retry=True)),
        matrix.Case('local', block, fault=DestroyOnDestination(
            'destroy-destination', 'disk', _safe(
                'an incoming migration cannot be aborted on the destination '
                '(libvirt: use virDomainDestroy instead); destroying it '
                'fails the migration at the source, which resumes the '
                'guest'))),
        matrix.Case('local', block, fault=KillDestinationQemu(
            'kill-destination-qemu', 'disk', _safe(
                'the source sees the migration stream and the NBD mirror '
                'target close, fails the job and keeps the guest running'))),
        matrix.Case('shared', live, fault=KillDestinationQemu(
            'kill-destination-qemu', 'ram', _safe(
                'the migration stream closes during the RAM phase; the '
                'source still owns the disk and resumes'))),
        matrix.Case('local', block, fault=KillDestinationLibvirtd(
            'kill-destination-libvirtd', 'disk', _safe(
                "the source's peer-to-peer connection to the destination "
                'dies, so it aborts the job; the restarted destination '
                'libvirtd kills the incoming QEMU it finds on reconnect'),
            exclusive=True)),
        matrix.Case('local', block, fault=CutNetwork(
            'cut-network', 'disk', flags.Expectation(
                flags.Outcome.INTACT,
                'the disk mirror and the RAM stream stall for 20 s and go '
                "on when the network is back (TCP retransmits; libvirt's "
                'keepalive, 5 s x 5, may instead end the job first: then '
                'the source keeps the guest, FAILED-SAFE)'),
            exclusive=True, also_accepted=('FAILED-SAFE',))),
        matrix.Case('shared', live, fault=CutNetwork(
            'cut-network', 'ram', flags.Expectation(
                flags.Outcome.INTACT,
                'as during the disk copy: before the switch-over the source '
                'owns the guest; the migration resumes or fails safe'),
            exclusive=True, also_accepted=('FAILED-SAFE',))),
    ]
