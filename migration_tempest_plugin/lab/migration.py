"""One migration call, the nemesis of every case: the flags and
parameters, a monitor that samples the job (and switches to post-copy when
asked), a watchdog that aborts it when it takes too long, and its outcome
as a MigrationOutcome.
"""

import logging
import threading
import time

from migration_tempest_plugin import flags
from migration_tempest_plugin.lab import results

LOG = logging.getLogger(__name__)

PARALLEL_CONNECTIONS = 4


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


def state_text(lv, dom):
    """libvirt's state and reason of `dom`, by name where known."""
    try:
        state, reason = dom.state()
    except lv.libvirtError as exc:
        return 'unknown (%s)' % exc.get_error_message()
    names = {getattr(lv, n): n[len('VIR_DOMAIN_'):] for n in (
        'VIR_DOMAIN_RUNNING', 'VIR_DOMAIN_PAUSED', 'VIR_DOMAIN_SHUTOFF',
        'VIR_DOMAIN_CRASHED', 'VIR_DOMAIN_BLOCKED')}
    return '%s (reason %d)' % (names.get(state, str(state)), reason)


def destroy_everywhere(lv, uuid, conns):
    """Destroy and undefine the guest wherever one of `conns` knows it."""
    for conn in conns:
        try:
            dom = conn.lookupByUUIDString(uuid)
        except lv.libvirtError:
            continue
        try:
            if dom.isActive():
                dom.destroy()
            if dom.isPersistent():
                dom.undefine()
        except lv.libvirtError as exc:
            LOG.warning('%s: cannot remove %s: %s', conn.getURI(), uuid, exc)


class Migrator(object):
    """Migrates guests between the lab's nodes under the runner's
    settings."""

    def __init__(self, lv, settings):
        self.lv = lv
        self.settings = settings

    def migrate(self, case, inst, dom, dst, dst_conn, on_stats=None,
                bandwidth_mib=None, extra_flags=0, post_copy_after_s=None):
        """Migrate `dom` to node `dst`; return a MigrationOutcome.
        `on_stats(stats)` sees every sample of the source's job statistics
        (a fault's trigger acts on them); `bandwidth_mib` caps RAM too,
        post-copy included.  `extra_flags` are added to the case's own (a
        post-copy recovery adds POSTCOPY_RESUME); `post_copy_after_s`
        overrides the settings' delay of the switch."""
        lv = self.lv
        value = case.flags | extra_flags
        resuming = flags.has(value, 'POSTCOPY_RESUME')
        copies = flags.has(value, 'NON_SHARED_DISK') or flags.has(
            value, 'NON_SHARED_INC')
        if copies:
            inst.create_disks(dst, local_only=True)  # as nova does
        params = {}
        # The cap slows the disk copy so that guest writes overlap it; RAM
        # shares the cap, so cases that copy no disk run uncapped.
        if copies and self.settings.bandwidth_mib:
            params[lv.VIR_MIGRATE_PARAM_BANDWIDTH] = \
                self.settings.bandwidth_mib
        if bandwidth_mib:
            params[lv.VIR_MIGRATE_PARAM_BANDWIDTH] = bandwidth_mib
            # QEMU has a cap of its own after the switch (none by default);
            # without it post-copy ends before a fault can act in it.
            if flags.has(value, 'POSTCOPY'):
                params[lv.VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY] = \
                    bandwidth_mib
        if not flags.has(value, 'TUNNELLED'):
            params[lv.VIR_MIGRATE_PARAM_URI] = 'tcp://%s' % dst.address
            if copies:
                params[lv.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = list(
                    case.migrate_disks)
        if flags.has(value, 'PARALLEL'):
            params[lv.VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS] = \
                PARALLEL_CONNECTIONS
        # A resumed migration is in post-copy from its start: never switch
        # it again, and let the watchdog pause rather than abort it.
        outcome = results.MigrationOutcome(post_copy=resuming)
        done = threading.Event()
        monitor = threading.Thread(
            target=self._monitor, args=(dom, done, outcome,
                                        flags.has(value, 'POSTCOPY')
                                        and not resuming, on_stats,
                                        post_copy_after_s),
            daemon=True)
        monitor.start()
        watchdog = threading.Timer(self.settings.migration_timeout_s,
                                   self._abort, args=(dom, outcome))
        watchdog.start()
        started = time.monotonic()
        try:
            dom.migrateToURI3(dst.uri, params, value)
            outcome.migrated = True
        except lv.libvirtError as exc:
            outcome.error = outcome.timeout or exc.get_error_message()
        finally:
            done.set()
            watchdog.cancel()
            monitor.join()
            outcome.seconds = time.monotonic() - started
        if outcome.migrated:
            self._read_stats(dst_conn, inst, outcome)
        return outcome

    def _monitor(self, dom, done, outcome, post_copy, on_stats=None,
                 post_copy_after_s=None):
        """Samples the source's job statistics while the migration runs
        (the source domain is gone afterwards) and, for POSTCOPY, switches
        to post-copy once the RAM phase has begun."""
        if post_copy_after_s is None:
            post_copy_after_s = self.settings.post_copy_after_s
        switch_at = time.monotonic() + post_copy_after_s
        while not done.wait(0.1):
            try:
                stats = dom.jobStats()
            except self.lv.libvirtError:
                continue
            if on_stats is not None:
                on_stats(stats)
            outcome.disk_bytes = max(outcome.disk_bytes,
                                     stats.get('disk_processed', 0))
            outcome.memory_bytes = max(outcome.memory_bytes,
                                       stats.get('memory_processed', 0))
            if post_copy and not outcome.post_copy and \
                    time.monotonic() >= switch_at and \
                    stats.get('memory_processed', 0) > 0:
                try:
                    dom.migrateStartPostCopy(0)
                    outcome.post_copy = True
                    LOG.debug('switched to post-copy after %d bytes of RAM',
                              stats['memory_processed'])
                except self.lv.libvirtError as exc:
                    # The RAM phase has not begun yet; ask again.
                    LOG.debug('migrateStartPostCopy: %s', exc)

    def _abort(self, dom, outcome):
        outcome.timeout = 'did not finish in %ds; aborted' % \
            self.settings.migration_timeout_s
        try:
            if outcome.post_copy:
                # libvirt refuses a plain abort in post-copy, and the
                # migration call would go on waiting: pause it instead.
                dom.abortJobFlags(self.lv.VIR_DOMAIN_ABORT_JOB_POSTCOPY)
            else:
                dom.abortJob()
        except self.lv.libvirtError as exc:
            LOG.debug('abortJob: %s (the job may have ended)', exc)

    def _read_stats(self, dst_conn, inst, outcome):
        try:
            dom = dst_conn.lookupByUUIDString(inst.uuid)
            stats = dom.jobStats(self.lv.VIR_DOMAIN_JOB_STATS_COMPLETED)
        except self.lv.libvirtError:
            return
        # The destination's record of the finished job is the complete one
        # for RAM; the disk mirror's figures come from the source's samples.
        outcome.downtime_ms = int(stats.get('downtime', 0))
        outcome.memory_bytes = max(outcome.memory_bytes,
                                   int(stats.get('memory_processed', 0)))
        outcome.disk_bytes = max(outcome.disk_bytes,
                                 int(stats.get('disk_processed', 0)))
