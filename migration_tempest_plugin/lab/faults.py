"""Faults during the migration: the lab's nemesis beyond the flags.

Each fault is a matrix case: a flag set on a storage mode, a phase of the
migration (``disk``: the disk mirror has begun; ``ram``: the memory copy
has begun), what the nemesis does then, and the outcome written down
before the first run, with where that expectation comes from.  The oracle
judges the disk as in every case; a fault case also asserts where the guest
runs afterwards and that nothing of it is left on the destination.
"""

import dataclasses
import logging
import os
import signal
import threading
import time

import psutil
from tempest.lib.common.utils import test_utils

from migration_tempest_plugin import flags
from migration_tempest_plugin.lab import matrix

# RAM and disk share one cap, so that every phase lasts long enough for the
# nemesis to act inside it (128 MiB of RAM at 16 MiB/s: about 8 s).
FAULT_BANDWIDTH_MIB = 16
DESTINATION_CLEAN_TIMEOUT_S = 60

LOG = logging.getLogger(__name__)


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
        tried = threading.Event()
        notes = []
        failures = []

        def on_stats(stats):
            if tried.is_set() or not self._due(stats):
                return
            tried.set()
            try:
                notes.append(self.inject(runner, inst, dom, dst_conn) or '')
            except Exception as exc:  # raised after the migration call
                failures.append(exc)
                return
            fired.set()     # only once inject() has returned
        try:
            outcome = runner.migrate(case, inst, dom, dst_conn,
                                     on_stats=on_stats,
                                     bandwidth_mib=FAULT_BANDWIDTH_MIB)
        finally:
            self.restore(runner)
        raise_injection_failure(self.name, failures, notes)
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


def raise_injection_failure(name, failures, notes=()):
    """A fault whose injection raised tested nothing: the case is the
    harness's ERROR, with the exception's own text (never a note beside a
    verdict that could agree with the expectation)."""
    if failures:
        exc = failures[0]
        raise matrix.CaseError('; '.join(
            ['%s: the fault could not be injected: %s: %s'
             % (name, type(exc).__name__, exc)]
            + [n for n in notes if n])) from exc


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
    # No abortJob first: on the incoming domain libvirt 9.0 makes it wait
    # for the migration job to end (about 6 s here), then refuses it, "no
    # job is active on the domain"; the destroy then hit a guest that had
    # already migrated, and it ran nowhere (doc/source/faults.rst).
    def inject(self, runner, inst, dom, dst_conn):
        dst_conn.lookupByUUIDString(inst.uuid).destroy()
        return 'the incoming domain destroyed'


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
        runner.link.release_alone()


class CutNetwork(Fault):
    """Both nodes drop each other's packets (blackhole routes in their own
    namespaces) for CUT_SECONDS, then the network comes back: a partition,
    not a lost node.  The host and the storage node reach both throughout.
    """

    # Under libvirt's keepalive for peer-to-peer migration (qemu.conf: 5 s
    # x 5): the cut tests a stall that TCP rides out, not a lost peer.
    CUT_SECONDS = 10

    @staticmethod
    def _routes(runner, verb):
        for node, other in ((runner.src, runner.dst),
                            (runner.dst, runner.src)):
            node.run(['ip', 'route', verb, 'blackhole',
                      other.address + '/32'], check=(verb == 'add'))
        if verb == 'del':
            runner.link.release_alone()

    def inject(self, runner, inst, dom, dst_conn):
        self._routes(runner, 'add')
        self._heal = threading.Timer(self.CUT_SECONDS, self._routes,
                                     args=(runner, 'del'))
        self._heal.daemon = True
        self._heal.start()
        return 'network cut for %ds' % self.CUT_SECONDS

    def restore(self, runner):
        # Not later: the timer would heal the next case's cut.
        if getattr(self, '_heal', None):
            self._heal.cancel()
        self._routes(runner, 'del')


def state_name(lv, state, reason):
    """libvirt's (state, reason) by name: 'PAUSED/POSTCOPY_FAILED'."""
    names = {lv.VIR_DOMAIN_RUNNING: 'RUNNING', lv.VIR_DOMAIN_PAUSED: 'PAUSED',
             lv.VIR_DOMAIN_SHUTOFF: 'SHUTOFF'}
    if state not in names:
        return '%d/%d' % (state, reason)
    prefix = 'VIR_DOMAIN_%s_' % names[state]
    for name in sorted(vars(lv)):
        if name.startswith(prefix) and not name.endswith('_LAST') and \
                getattr(lv, name) == reason:
            return '%s/%s' % (names[state], name[len(prefix):])
    return '%s/%d' % (names[state], reason)


class PostCopyFault(Fault):
    """A fault after the switch to post-copy, when neither host holds the
    whole guest: the source is paused with the pages not sent yet, the
    guest runs on the destination and fetches them on demand.  libvirt
    (>= 8.5) then keeps both domains for a recovery instead of rolling
    back, and the run attempts it: the same migration again, with
    POSTCOPY_RESUME.  Every wait is bounded."""

    # libvirt shows the destination RUNNING once QEMU's RESUME event
    # comes, before its `cont` returns.  A pause in that window (about
    # 0.1 s) left the destination QEMU unanswering and the migration call
    # hung in 2 of 3 runs (doc/source/faults.rst); the cases test the
    # post-copy phase proper, and what libvirt promises there.
    AFTER_SWITCH_S = 1
    HEAL_AFTER_S = 60       # restore() then, whatever libvirt did
    FAILED_WAIT_S = 5       # for the destination to see the failure too
    # A resume sent 10 ms after the failure hung libvirt 9.0's Prepare on
    # the destination for 10 minutes (its Finish was still unwinding).
    RESUME_SETTLE_S = 3
    # The longest call that ends by itself: a cut, which keepalive ends
    # after 30 s (here about 31 s in all); a resume moves at most the
    # guest's RAM (128 MiB at 16 MiB/s, 8 s).  libvirt 9.0 once left the
    # migration call blocked for 20 minutes (doc/source/faults.rst).
    MIGRATION_HANG_S = 60
    RESUME_HANG_S = 30
    RECOVERY_S = 60         # no resume attempt starts after this
    RESUME_RETRY_S = 5

    def _states(self, runner, inst, dom, dst_conn):
        """Both sides' libvirt state, by name."""
        lv = runner.libvirt
        out = []
        for side, get in (('source', lambda: dom),
                          ('destination',
                           lambda: dst_conn.lookupByUUIDString(inst.uuid))):
            try:
                out.append('%s %s' % (side, state_name(lv,
                                                       *get().state())))
            except lv.libvirtError:
                out.append('%s: no domain' % side)
        return ', '.join(out)

    def _in_post_copy(self, runner, inst, dom, dst_conn):
        """The switch is over: the source paused for post-copy and the
        guest running on the destination."""
        lv = runner.libvirt
        try:
            if tuple(dom.state()) != (lv.VIR_DOMAIN_PAUSED,
                                      lv.VIR_DOMAIN_PAUSED_POSTCOPY):
                return False
            incoming = dst_conn.lookupByUUIDString(inst.uuid)
            return tuple(incoming.state()) == (lv.VIR_DOMAIN_RUNNING,
                                               lv.VIR_DOMAIN_RUNNING_POSTCOPY)
        except lv.libvirtError:
            return False

    def _destination_failed(self, runner, inst, dst_conn):
        lv = runner.libvirt
        try:
            _, reason = dst_conn.lookupByUUIDString(inst.uuid).state()
        except lv.libvirtError:
            return True     # gone: nothing more to wait for
        return reason in (lv.VIR_DOMAIN_RUNNING_POSTCOPY_FAILED,
                          lv.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED)

    def _finished(self, runner, inst, dom, dst_conn):
        """The migration ended without us: the source domain is gone and
        the destination runs the guest outside post-copy."""
        lv = runner.libvirt
        try:
            dom.state()
            return False
        except lv.libvirtError:
            pass
        try:
            state, reason = dst_conn.lookupByUUIDString(inst.uuid).state()
        except lv.libvirtError:
            return False
        return state == lv.VIR_DOMAIN_RUNNING and reason not in (
            lv.VIR_DOMAIN_RUNNING_POSTCOPY,
            lv.VIR_DOMAIN_RUNNING_POSTCOPY_FAILED)

    def run(self, runner, case, inst, dom, dst_conn):
        fired = threading.Event()
        migration_over = threading.Event()
        fired_at = []
        notes = []
        failures = []
        started = time.monotonic()
        # Whatever libvirt does with the fault, the lab comes back.
        safety = threading.Timer(self.HEAL_AFTER_S, self._heal_late,
                                 args=(runner, notes))
        safety.daemon = True

        def watch():
            # The domain's state, not its job statistics: once post-copy
            # begins, jobStats waits on QEMU's monitor for seconds, often
            # until the migration is over, and the fault would never fire.
            while not migration_over.wait(0.05):
                if self._in_post_copy(runner, inst, dom, dst_conn):
                    break
            else:
                return
            if migration_over.wait(self.AFTER_SWITCH_S):
                return
            safety.start()
            try:
                notes.append(self.inject(runner, inst, dom, dst_conn) or '')
            except Exception as exc:  # raised after the migration call
                failures.append(exc)
                LOG.info('%s: injection failed: %s', self.name, exc)
                return
            fired_at.append(time.monotonic())
            fired.set()     # only once inject() has returned
            LOG.info('%s: injected in post-copy: %s', self.name, notes[-1])
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            # Switch as soon as RAM moves: here QEMU's monitor stops
            # answering for seconds a little later in the pre-copy pass,
            # and the migration then ends before the switch is asked for.
            first = self._bounded_migrate(
                'the migration call', self.MIGRATION_HANG_S, runner, case,
                inst, dom, dst_conn, notes, post_copy_after_s=0)
            migration_over.set()
            watcher.join(self.FAILED_WAIT_S)
            if fired.is_set() and not first['migrated']:
                test_utils.call_until_true(
                    lambda: self._destination_failed(runner, inst, dst_conn),
                    self.FAILED_WAIT_S, 1)
            if fired.is_set():
                notes.append('%.1fs after the fault: %s' % (
                    time.monotonic() - fired_at[0],
                    self._states(runner, inst, dom, dst_conn)))
                LOG.info('%s: %s; migration call: %s', self.name, notes[-1],
                         first['error'] or 'returned success')
        finally:
            migration_over.set()
            safety.cancel()
            self.restore(runner)
        raise_injection_failure(self.name, failures, notes)
        outcome = first
        if fired.is_set() and not first['migrated']:
            outcome = self._recover(runner, case, inst, dom, dst_conn, notes)
            outcome['first_error'] = first['error']
        outcome.update(
            fired=fired.is_set(), post_copy=first['post_copy'],
            seconds=time.monotonic() - started,
            note='; '.join(n for n in notes if n),
            # In post-copy the destination must keep the guest until the
            # recovery: only a finished migration leaves a clean state.
            destination_clean=outcome['migrated'])
        return outcome

    def _bounded_migrate(self, what, bound_s, runner, case, inst, dom,
                         dst_conn, notes, **migrate_args):
        """One migration call, run aside and given `bound_s`.  Once QEMU
        is paused in post-copy the runner's watchdog cannot end a hung
        call (libvirt refuses the pause it sends), so if it hangs,
        destroying the guest on both sides is the only bound left, and
        the case is the harness's ERROR."""
        outcome = {}
        raised = []

        def call_migrate():
            try:
                outcome.update(runner.migrate(
                    case, inst, dom, dst_conn,
                    bandwidth_mib=FAULT_BANDWIDTH_MIB, **migrate_args))
            except Exception as exc:  # said in the outcome, with its text
                raised.append(exc)
        call = threading.Thread(target=call_migrate, daemon=True)
        call.start()
        call.join(bound_s)
        if not call.is_alive():
            return outcome or {'migrated': False, 'seconds': 0.0,
                               'post_copy': False,
                               'error': '%s raised %s' % (what, ''.join(
                                   '%s: %s' % (type(e).__name__, e)
                                   for e in raised[:1]))}
        notes.append('%s hung for %ds (%s); guest destroyed on both nodes'
                     % (what, bound_s,
                        self._states(runner, inst, dom, dst_conn)))
        LOG.warning('%s: %s', self.name, notes[-1])
        runner.destroy_everywhere(inst, (dom.connect(), dst_conn))
        call.join(30)
        raise matrix.CaseError('; '.join(n for n in notes if n))

    def _resume(self, runner, case, inst, dom, dst_conn, notes):
        return self._bounded_migrate(
            'the resume', self.RESUME_HANG_S, runner, case, inst, dom,
            dst_conn, notes, extra_flags=flags.FLAGS['POSTCOPY_RESUME'])

    def _heal_late(self, runner, notes):
        notes.append('restored after %ds by the safety timer'
                     % self.HEAL_AFTER_S)
        self.restore(runner)

    def _recover(self, runner, case, inst, dom, dst_conn, notes):
        """Resume the failed post-copy migration from the source, as
        libvirt documents it: the same call with POSTCOPY_RESUME added.
        Returns the outcome of the last attempt."""
        deadline = time.monotonic() + self.RECOVERY_S
        attempt = 0
        time.sleep(self.RESUME_SETTLE_S)
        while True:
            if self._finished(runner, inst, dom, dst_conn):
                notes.append('the migration finished by itself: %s'
                             % self._states(runner, inst, dom, dst_conn))
                LOG.info('%s: %s', self.name, notes[-1])
                return {'migrated': True, 'error': ''}
            attempt += 1
            outcome = self._resume(runner, case, inst, dom, dst_conn, notes)
            states = self._states(runner, inst, dom, dst_conn)
            if outcome['migrated']:
                notes.append('resume %d completed in %.1fs: %s' % (
                    attempt, outcome['seconds'], states))
            else:
                notes.append('resume %d refused: %s (%s)' % (
                    attempt, outcome['error'], states))
            LOG.info('%s: %s', self.name, notes[-1])
            if outcome['migrated'] or time.monotonic() >= deadline:
                return outcome
            time.sleep(self.RESUME_RETRY_S)


class CutNetworkPostCopy(PostCopyFault):
    """The nodes lose each other after the switch to post-copy, until
    libvirt fails the job (keepalive) or HEAL_AFTER_S, whichever first."""

    def inject(self, runner, inst, dom, dst_conn):
        CutNetwork._routes(runner, 'add')
        return 'network cut'

    def restore(self, runner):
        CutNetwork._routes(runner, 'del')


class PauseSourcePostCopy(PostCopyFault):
    """The source pauses its post-copy migration (virsh domjobabort
    --postcopy): libvirt's own way to interrupt post-copy, which leaves it
    resumable."""

    def inject(self, runner, inst, dom, dst_conn):
        dom.abortJobFlags(runner.libvirt.VIR_DOMAIN_ABORT_JOB_POSTCOPY)
        return 'abortJobFlags(ABORT_JOB_POSTCOPY) on the source was accepted'


class AbortDestinationPostCopy(PostCopyFault):
    """The destination's job is aborted after the switch to post-copy,
    with the flag that makes libvirt pause rather than refuse."""

    def inject(self, runner, inst, dom, dst_conn):
        incoming = dst_conn.lookupByUUIDString(inst.uuid)
        try:
            incoming.abortJobFlags(
                runner.libvirt.VIR_DOMAIN_ABORT_JOB_POSTCOPY)
        except runner.libvirt.libvirtError as exc:
            return 'abortJobFlags(ABORT_JOB_POSTCOPY) on the destination ' \
                'refused: %s' % exc.get_error_message()
        return 'abortJobFlags(ABORT_JOB_POSTCOPY) on the destination was ' \
            'accepted'


def _safe(reason):
    return flags.Expectation(flags.Outcome.FAILED_SAFE, reason)


def fault_cases():
    """Every fault case, each with its expected outcome and its source."""
    by_name = {fs.name: fs for fs in matrix.flag_sets()}
    block, live = by_name['nova-block'], by_name['nova-live']
    post_copy = by_name['nova-live+post-copy']
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
                'the disk mirror and the RAM stream stall for 10 s and go '
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
        # Written before the first run: keepalive fails the job, the source
        # pauses, the destination keeps the guest, POSTCOPY_RESUME after
        # the heal recovers it.  Seen instead (libvirt 9.0, QEMU 7.2, see
        # doc/source/faults.rst): the resume is refused while QEMU's own
        # stream survives the cut, and that stream ends the migration.
        matrix.Case('shared', post_copy, fault=CutNetworkPostCopy(
            'cut-network-post-copy', 'post-copy', flags.Expectation(
                flags.Outcome.INTACT,
                'after the switch no host holds the whole guest, so libvirt '
                'does not roll back: its keepalive (5 s x 5) fails the job '
                'and the source stays paused (PAUSED/POSTCOPY_FAILED), '
                'while QEMU\'s migration stream, a TCP connection the '
                'blackhole only stalls, stays postcopy-active; so '
                'POSTCOPY_RESUME is refused ("QEMU reports migration is '
                'still running", it needs QEMU\'s postcopy-paused) and, once '
                'the network is back, that stream finishes the migration, '
                'which libvirt completes unattended: the guest runs on at '
                'the destination with every acknowledged write'),
            exclusive=True)),
        matrix.Case('shared', post_copy, fault=PauseSourcePostCopy(
            'pause-source-post-copy', 'post-copy', flags.Expectation(
                flags.Outcome.INTACT,
                'virDomainAbortJobFlags(VIR_DOMAIN_ABORT_JOB_POSTCOPY) on '
                'the source pauses post-copy (QEMU migrate-pause) instead '
                'of refusing: the migration call fails, the source stays '
                'paused (PAUSED/POSTCOPY_FAILED), the destination keeps '
                'the guest (RUNNING/POSTCOPY_FAILED); the same migration '
                'with POSTCOPY_RESUME completes it, intact (libvirt >= '
                '8.5, virDomainMigrateStartPostCopy, virDomainAbortJobFlags)'
                ))),
        # Written before the first run: the same pause from the
        # destination's side.  libvirt 9.0 refuses it there (see
        # doc/source/faults.rst), so the expectation is what it does.
        matrix.Case('shared', post_copy, fault=AbortDestinationPostCopy(
            'abort-destination-post-copy', 'post-copy', flags.Expectation(
                flags.Outcome.INTACT,
                'libvirt pauses post-copy only from the source: on the '
                'incoming domain virDomainAbortJobFlags('
                'VIR_DOMAIN_ABORT_JOB_POSTCOPY) is refused ("current job is '
                'not outgoing migration in post-copy mode", libvirt 9.0), '
                'so the migration goes on and completes, intact'))),
    ]
