"""A migration with a fault: the pipeline's part that owns the fault's
trigger, its time bounds, the heal, the retries, the nodes' link and every
per-run state.  The fault itself is data with an injector
(:mod:`faults`).
"""

import logging
import threading
import time

from tempest.lib.common.utils import test_utils

from migration_tempest_plugin import flags
from migration_tempest_plugin.lab import faults
from migration_tempest_plugin.lab import migration
from migration_tempest_plugin.lab import results

LOG = logging.getLogger(__name__)

# RAM and disk share one cap, so that every phase lasts long enough for the
# fault to act inside it (128 MiB of RAM at 16 MiB/s: about 8 s).
FAULT_BANDWIDTH_MIB = 16
DESTINATION_CLEAN_TIMEOUT_S = 60


class Shot(object):
    """One run's injector: fired at most once, counted as fired only once
    inject() has returned, healed exactly once (by the fault's timer or
    after the migration call, whichever first), and then, for a fault that
    disturbs the link, the link handed back."""

    def __init__(self, runner, ctx, late_note=''):
        self.fault = ctx.fault
        self.runner = runner
        self.injector = ctx.fault.injector(ctx)
        self.fired = threading.Event()
        self.fired_at = None
        self.notes = []
        self.failure = None
        self._tried = False
        self._healed = False
        self._lock = threading.Lock()
        self._timer = None
        self._late_note = late_note

    def fire(self):
        """Inject, once; False when the injection raised."""
        with self._lock:
            if self._tried:
                return self.fired.is_set()
            self._tried = True
        try:
            self.notes.append(self.injector.inject() or '')
        except Exception as exc:  # the case's ERROR, after the migration
            self.failure = exc
            LOG.info('%s: injection failed: %s', self.fault.name, exc)
            return False
        self.fired_at = time.monotonic()
        self.fired.set()
        if self.fault.heal_after_s:
            self._timer = threading.Timer(self.fault.heal_after_s,
                                          self.heal, args=(True,))
            self._timer.daemon = True
            self._timer.start()
        return True

    def heal(self, by_timer=False):
        with self._lock:
            if self._healed:
                return
            self._healed = True
        if self._timer and not by_timer:
            self._timer.cancel()
        try:
            self.injector.heal()
        finally:
            if self.fault.disturbs_link:
                self.runner.link.release_alone()
        if by_timer and self._late_note:
            self.notes.append(self._late_note)

    def raise_if_failed(self):
        """A fault whose injection raised tested nothing: the case is the
        harness's ERROR, with the exception's own text."""
        if self.failure is not None:
            exc = self.failure
            raise results.CaseError('; '.join(
                ['%s: the fault could not be injected: %s: %s'
                 % (self.fault.name, type(exc).__name__, exc)]
                + [n for n in self.notes if n])) from exc

    def note(self):
        return '; '.join(n for n in self.notes if n)


def context(runner, case, inst, dom, dst_conn):
    return faults.Context(runner.libvirt, runner.src, runner.dst, inst, dom,
                          dst_conn, case.fault)


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


def run(runner, case, inst, dom, dst_conn):
    """The migration of `case` with its fault; a MigrationOutcome."""
    if case.fault.phase == faults.POST_COPY:
        return PostCopyRun(runner, case, inst, dom, dst_conn).run()
    return pre_copy_run(runner, case, inst, dom, dst_conn)


def pre_copy_run(runner, case, inst, dom, dst_conn):
    """The fault fires when the job statistics show its phase has begun;
    the lab heals it after the call, or earlier by the fault's timer."""
    fault = case.fault
    shot = Shot(runner, context(runner, case, inst, dom, dst_conn))
    key = 'disk_processed' if fault.phase == 'disk' else 'memory_processed'
    due_at = []

    def on_stats(stats):
        if stats.get(key, 0) <= 0:
            return
        if not due_at:
            due_at.append(time.monotonic())
        if time.monotonic() - due_at[0] >= fault.delay_s:
            shot.fire()
    try:
        outcome = runner.migrator.migrate(
            case, inst, dom, runner.dst, dst_conn, on_stats=on_stats,
            bandwidth_mib=FAULT_BANDWIDTH_MIB)
    finally:
        shot.heal()
    shot.raise_if_failed()
    outcome.fired = shot.fired.is_set()
    outcome.note = shot.note()
    outcome.destination_clean = (outcome.migrated
                                 or destination_clean(runner, inst))
    if fault.retry and not outcome.migrated:
        first = outcome
        outcome = runner.migrator.migrate(case, inst, dom, runner.dst,
                                          dst_conn)
        outcome.fired, outcome.note = first.fired, first.note
        outcome.first_error = first.error
        outcome.destination_clean = first.destination_clean
    return outcome


def fault_verdict(outcome):
    """The verdict of a fault case whose disk the oracle found intact."""
    said = []
    if not outcome.fired:
        said.append('the migration ended before the fault was due')
    if outcome.note:
        said.append(outcome.note)
    if outcome.first_error:
        said.append('first attempt: ' + outcome.first_error)
    if outcome.migrated:
        return results.Verdict.INTACT, '; '.join(said)
    said.insert(0, outcome.error)
    if not outcome.destination_clean:
        return results.Verdict.LEFT_BEHIND, '; '.join(
            said + ['the guest is still defined on the destination'])
    return results.Verdict.FAILED_SAFE, '; '.join(said)


class PostCopyRun(object):
    """A fault after the switch to post-copy, when neither host holds the
    whole guest: the source is paused with the pages not sent yet, the
    guest runs on the destination and fetches them on demand.  libvirt
    (>= 8.5) then keeps both domains for a recovery instead of rolling
    back, and the run attempts it: the same migration again, with
    POSTCOPY_RESUME.  Every wait is bounded."""

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

    def __init__(self, runner, case, inst, dom, dst_conn):
        self.runner, self.case, self.inst = runner, case, inst
        self.dom, self.dst_conn = dom, dst_conn
        self.lv = runner.libvirt
        self.name = case.fault.name
        self.shot = Shot(runner, context(runner, case, inst, dom, dst_conn),
                         late_note='restored after %ds by the safety timer'
                         % case.fault.heal_after_s)
        self.notes = self.shot.notes

    def _incoming(self):
        return self.dst_conn.lookupByUUIDString(self.inst.uuid)

    def _states(self):
        """Both sides' libvirt state, by name."""
        out = []
        for side, get in (('source', lambda: self.dom),
                          ('destination', self._incoming)):
            try:
                out.append('%s %s' % (side, migration.state_name(
                    self.lv, *get().state())))
            except self.lv.libvirtError:
                out.append('%s: no domain' % side)
        return ', '.join(out)

    def _in_post_copy(self):
        """The switch is over: the source paused for post-copy and the
        guest running on the destination."""
        lv = self.lv
        try:
            if tuple(self.dom.state()) != (lv.VIR_DOMAIN_PAUSED,
                                           lv.VIR_DOMAIN_PAUSED_POSTCOPY):
                return False
            return tuple(self._incoming().state()) == (
                lv.VIR_DOMAIN_RUNNING, lv.VIR_DOMAIN_RUNNING_POSTCOPY)
        except lv.libvirtError:
            return False

    def _destination_failed(self):
        lv = self.lv
        try:
            _, reason = self._incoming().state()
        except lv.libvirtError:
            return True     # gone: nothing more to wait for
        return reason in (lv.VIR_DOMAIN_RUNNING_POSTCOPY_FAILED,
                          lv.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED)

    def _finished(self):
        """The migration ended without us: the source domain is gone and
        the destination runs the guest outside post-copy."""
        lv = self.lv
        try:
            self.dom.state()
            return False
        except lv.libvirtError:
            pass
        try:
            state, reason = self._incoming().state()
        except lv.libvirtError:
            return False
        return state == lv.VIR_DOMAIN_RUNNING and reason not in (
            lv.VIR_DOMAIN_RUNNING_POSTCOPY,
            lv.VIR_DOMAIN_RUNNING_POSTCOPY_FAILED)

    def _watch(self, migration_over):
        # The domain's state, not its job statistics: once post-copy
        # begins, jobStats waits on QEMU's monitor for seconds, often until
        # the migration is over, and the fault would never fire.
        while not migration_over.wait(0.05):
            if self._in_post_copy():
                break
        else:
            return
        if migration_over.wait(self.case.fault.delay_s):
            return
        if self.shot.fire():
            LOG.info('%s: injected in post-copy: %s', self.name,
                     self.notes[-1])

    def run(self):
        shot = self.shot
        migration_over = threading.Event()
        started = time.monotonic()
        watcher = threading.Thread(target=self._watch,
                                   args=(migration_over,), daemon=True)
        watcher.start()
        try:
            # Switch as soon as RAM moves: here QEMU's monitor stops
            # answering for seconds a little later in the pre-copy pass,
            # and the migration then ends before the switch is asked for.
            first = self._bounded('the migration call', self.MIGRATION_HANG_S,
                                  post_copy_after_s=0)
            migration_over.set()
            watcher.join(self.FAILED_WAIT_S)
            fired = shot.fired.is_set()
            if fired and not first.migrated:
                test_utils.call_until_true(self._destination_failed,
                                           self.FAILED_WAIT_S, 1)
            if fired:
                self.notes.append('%.1fs after the fault: %s' % (
                    time.monotonic() - shot.fired_at, self._states()))
                LOG.info('%s: %s; migration call: %s', self.name,
                         self.notes[-1], first.error or 'returned success')
        finally:
            migration_over.set()
            shot.heal()
        shot.raise_if_failed()
        outcome = first
        if shot.fired.is_set() and not first.migrated:
            outcome = self._recover()
            outcome.first_error = first.error
        outcome.fired = shot.fired.is_set()
        outcome.post_copy = first.post_copy
        outcome.seconds = time.monotonic() - started
        outcome.note = shot.note()
        # In post-copy the destination must keep the guest until the
        # recovery: only a finished migration leaves a clean state.
        outcome.destination_clean = outcome.migrated
        return outcome

    def _bounded(self, what, bound_s, **migrate_args):
        """One migration call, run aside and given `bound_s`.  Once QEMU
        is paused in post-copy the migration's watchdog cannot end a hung
        call (libvirt refuses the pause it sends), so if it hangs,
        destroying the guest on both sides is the only bound left, and
        the case is the harness's ERROR."""
        box = []
        raised = []

        def call():
            try:
                box.append(self.runner.migrator.migrate(
                    self.case, self.inst, self.dom, self.runner.dst,
                    self.dst_conn, bandwidth_mib=FAULT_BANDWIDTH_MIB,
                    **migrate_args))
            except Exception as exc:  # said in the outcome, with its text
                raised.append(exc)
        thread = threading.Thread(target=call, daemon=True)
        thread.start()
        thread.join(bound_s)
        if not thread.is_alive():
            if box:
                return box[0]
            return results.MigrationOutcome(error='%s raised %s' % (
                what, ''.join('%s: %s' % (type(e).__name__, e)
                              for e in raised[:1])))
        self.notes.append('%s hung for %ds (%s); guest destroyed on both '
                          'nodes' % (what, bound_s, self._states()))
        LOG.warning('%s: %s', self.name, self.notes[-1])
        migration.destroy_everywhere(self.lv, self.inst.uuid,
                                     (self.dom.connect(), self.dst_conn))
        thread.join(30)
        raise results.CaseError(self.shot.note())

    def _recover(self):
        """Resume the failed post-copy migration from the source, as
        libvirt documents it: the same call with POSTCOPY_RESUME added.
        Returns the outcome of the last attempt."""
        deadline = time.monotonic() + self.RECOVERY_S
        attempt = 0
        time.sleep(self.RESUME_SETTLE_S)
        while True:
            if self._finished():
                self.notes.append('the migration finished by itself: %s'
                                  % self._states())
                LOG.info('%s: %s', self.name, self.notes[-1])
                return results.MigrationOutcome(migrated=True)
            attempt += 1
            outcome = self._bounded(
                'the resume', self.RESUME_HANG_S,
                extra_flags=flags.FLAGS['POSTCOPY_RESUME'])
            states = self._states()
            if outcome.migrated:
                self.notes.append('resume %d completed in %.1fs: %s' % (
                    attempt, outcome.seconds, states))
            else:
                self.notes.append('resume %d refused: %s (%s)' % (
                    attempt, outcome.error, states))
            LOG.info('%s: %s', self.name, self.notes[-1])
            if outcome.migrated or time.monotonic() >= deadline:
                return outcome
            time.sleep(self.RESUME_RETRY_S)
