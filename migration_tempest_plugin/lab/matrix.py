"""The lab's flag matrix: which flag sets run on which storage, and one
case = boot a writing guest, migrate it (the nemesis), read the disk back,
let the oracle judge.
"""

import contextlib
import dataclasses
import logging
import os
import threading
import time

from tempest.lib.common.utils import test_utils

from migration_tempest_plugin import errors
from migration_tempest_plugin import flags
from migration_tempest_plugin.integrity import blocks
from migration_tempest_plugin.integrity import checker
from migration_tempest_plugin.integrity import history as historylib
from migration_tempest_plugin.lab import instance as instancelib
from migration_tempest_plugin.lab import storage as storagelib
from migration_tempest_plugin import runtime as rt
from migration_tempest_plugin import storage_modes

LOG = logging.getLogger(__name__)

NOVA_OPTIONS = {
    'tunnelled': flags.NovaOptions(live_migration_tunnelled=True),
    'tls': flags.NovaOptions(live_migration_with_native_tls=True),
    'post-copy': flags.NovaOptions(live_migration_permit_post_copy=True),
    'auto-converge': flags.NovaOptions(
        live_migration_permit_auto_converge=True),
    'parallel': flags.NovaOptions(live_migration_parallel_connections=4),
}
PARALLEL_CONNECTIONS = 4


@dataclasses.dataclass(frozen=True)
class FlagSet:
    name: str
    flags: int
    paused: bool = False      # suspend the guest before migrating
    note: str = ''


def _nova(block, option=None, paused=False):
    options = NOVA_OPTIONS[option] if option else flags.NovaOptions()
    name = 'nova-%s%s%s' % ('block' if block else 'live',
                            '+' + option if option else '',
                            '+paused' if paused else '')
    return FlagSet(name, flags.nova_flags(options, block_migration=block,
                                          paused=paused), paused=paused,
                   note="nova 34's own set")


def _raw(name, text, note):
    return FlagSet(name, flags.parse(text), note=note)


def flag_sets():
    """Every flag set of the matrix, nova's first."""
    sets = [_nova(False), _nova(True)]
    for option in NOVA_OPTIONS:
        sets += [_nova(False, option), _nova(True, option)]
    sets += [
        _nova(False, paused=True), _nova(True, paused=True),
        _raw('raw-non-shared-disk',
             'LIVE|PEER2PEER|UNDEFINE_SOURCE|PERSIST_DEST|NON_SHARED_DISK',
             'full-chain copy; nova never uses it'),
        _raw('raw-compressed',
             'LIVE|PEER2PEER|UNDEFINE_SOURCE|PERSIST_DEST|COMPRESSED',
             'xbzrle RAM compression'),
        _raw('raw-unsafe',
             'LIVE|PEER2PEER|UNDEFINE_SOURCE|PERSIST_DEST|UNSAFE',
             "skips libvirt's shared-storage check"),
        _raw('raw-inc-unsafe',
             'LIVE|PEER2PEER|UNDEFINE_SOURCE|PERSIST_DEST|NON_SHARED_INC'
             '|UNSAFE', "the seed's block set, with the check skipped"),
    ]
    return sets


@dataclasses.dataclass
class Case:
    storage: str
    flag_set: FlagSet
    control: str = ''   # 'loss' or 'intact' when this case is a control
    fault: object = None    # a faults.Fault injected during the migration
    disks: object = None    # a disks.DiskSetup other than the default

    @property
    def id(self):
        return '%s/%s' % (self.storage, self.name)

    @property
    def name(self):
        return self.flag_set.name + ''.join(
            '+' + extra.name for extra in (self.disks, self.fault) if extra)

    @property
    def migrate_disks(self):
        """The disks a disk-copying migration names."""
        return (self.disks and self.disks.copy) or ('vda',)

    def instance_options(self):
        """Keyword arguments of instance.Instance for this case's disk."""
        if not self.disks:
            return {}
        return {'cache': self.disks.cache,
                'base_storage': self.disks.base_storage or self.storage,
                'ephemeral_storage': self.disks.ephemeral_storage or None}

    @property
    def flags(self):
        return self.flag_set.flags

    @property
    def exclusive(self):
        """The case disturbs the whole lab (network, libvirtd): it must
        run alone."""
        return bool(self.fault and self.fault.exclusive)

    def expectation(self):
        if self.fault:
            return self.fault.expectation
        if self.disks:
            return self.disks.expectation
        return storagelib.expect(self.flags, self.storage)


def all_cases(storages=storage_modes.NAMES, only=None):
    cases = []
    for storage in storages:
        for flag_set in flag_sets():
            case = Case(storage, flag_set)
            if only and not any(word in case.id for word in only):
                continue
            cases.append(case)
    return cases


def control_cases():
    """The project's proof that the oracle sees what it must see: the seed's
    data loss on storage without cross-host locks (bindfs, and NFSv3 for
    real), and nova's own sets intact on the storage they are meant for."""
    by_name = {fs.name: fs for fs in flag_sets()}
    return [
        Case('shared-nolock', by_name['nova-block'], control='loss'),
        Case('shared-nolock', by_name['raw-non-shared-disk'],
             control='loss'),
        Case('nfs', by_name['nova-block'], control='loss'),
        Case('local', by_name['nova-block'], control='intact'),
        Case('shared', by_name['nova-live'], control='intact'),
        Case('nfs', by_name['nova-live'], control='intact'),
    ]


# -- outcome ----------------------------------------------------------------

@dataclasses.dataclass
class Result:
    storage: str
    flag_set: str
    flags: list
    # INTACT | DATA-LOSS | REFUSED | ERROR; faults: FAILED-SAFE,
    # LEFT-BEHIND, STOPPED (the stack stopped the guest; disk intact)
    verdict: str
    expected: str
    expected_outcome: str
    agrees: bool
    message: str = ''
    control: str = ''
    lost_writes: int = 0
    corrupt_blocks: int = 0
    misplaced_blocks: int = 0
    stale_blocks: int = 0
    acked_writes: int = 0
    writes_during_migration: int = 0
    first_offsets: list = dataclasses.field(default_factory=list)
    migrated: bool = False
    post_copy: bool = False     # the switch to post-copy happened
    duration_s: float = 0.0
    boot_s: float = 0.0
    link_wait_s: float = 0.0      # waiting for a case that held it alone
    migration_s: float = 0.0
    verify_s: float = 0.0
    downtime_ms: int = 0
    memory_bytes_transferred: int = 0
    disk_bytes_copied: int = 0
    finding: str = ''

    def to_dict(self):
        return dataclasses.asdict(self)


def agreement(expectation, verdict, message=''):
    """Does an observed verdict (and refusal message) match the expected
    outcome? A refusal must carry the refusing component's expected words:
    refused for another reason is a finding too."""
    pairs = {
        flags.Outcome.INTACT: ('INTACT',),
        flags.Outcome.REFUSED_BY_LIBVIRT: ('REFUSED',),
        flags.Outcome.REFUSED_BY_NOVA: ('REFUSED',),
        flags.Outcome.DATA_AT_RISK: ('DATA-LOSS',),
        flags.Outcome.FAILED_SAFE: ('FAILED-SAFE',),
    }
    if verdict not in pairs[expectation.outcome]:
        return False
    return verdict != 'REFUSED' or expectation.message in message


def finding_text(expectation, verdict, message):
    if agreement(expectation, verdict, message):
        return ''
    if expectation.outcome is flags.Outcome.DATA_AT_RISK and \
            verdict == 'INTACT':
        return 'data at risk, but no write was lost in this run'
    return 'expected %s, observed %s%s' % (
        str(expectation) if verdict == 'REFUSED'
        else expectation.outcome.value, verdict,
        (': ' + message) if message else '')


# -- running one case -------------------------------------------------------

class CaseError(errors.Error):
    """The harness could not run the case (not a verdict on the stack)."""


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
    acks_before: int = 30         # acknowledged writes before the nemesis
    acks_after: int = 20          # and after it, wherever the guest runs
    post_copy_after_s: float = 1.0


class CaseRunner(object):
    """Runs cases on a Lab that is up."""

    def __init__(self, lab, guest, layout, work_dir, settings=None,
                 progress=print):
        import libvirt  # the lab needs it; the flag model does not
        self.libvirt = libvirt
        # Errors reach the report through exceptions; keep stderr quiet.
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        self.lab = lab
        self.guest = guest
        self.layout = layout
        self.work_dir = work_dir
        self.settings = settings or Settings()
        self.progress = progress
        self.consoles = os.path.join(work_dir, 'consoles')
        os.makedirs(self.consoles, exist_ok=True)
        self.src, self.dst = lab.nodes[0], lab.nodes[1]
        self.link = NodesLink()
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

    def run(self, case):
        with contextlib.ExitStack() as link:
            return self._run(case, link)

    def _run(self, case, link):
        """One case; `link` holds the nodes' link, taken after the boot,
        until the case has cleaned up after itself."""
        started = time.monotonic()
        expectation = case.expectation()
        inst = self.instance(case)
        src_conn = self.connect(self.src)
        dst_conn = None
        outcome = {}
        try:
            inst.create_disks(self.src)
            dom = src_conn.createXML(inst.domain_xml(), 0)
            self.wait_acks(inst, self.settings.acks_before,
                           self.settings.boot_timeout_s, 'boot')
            boot_s = time.monotonic() - started
            link.enter_context(self.link.held(alone=case.exclusive))
            link_wait_s = time.monotonic() - started - boot_s
            dst_conn = self.connect(self.dst)
            acks_at_start = self.ack_count(inst)
            if case.flag_set.paused:
                dom.suspend()
            if case.fault:
                outcome = case.fault.run(self, case, inst, dom, dst_conn)
            else:
                outcome = self.migrate(case, inst, dom, dst_conn)
            outcome['boot_s'] = boot_s
            outcome['link_wait_s'] = link_wait_s
            acks_at_end = self.ack_count(inst)
            here = dst_conn if outcome['migrated'] else src_conn
            dom = here.lookupByUUIDString(inst.uuid)
            if case.flag_set.paused:
                dom.resume()
            # The guest must go on writing where it now runs.
            try:
                self.wait_acks(inst, acks_at_end + self.settings.acks_after,
                               30, 'writing after the migration', dom=dom)
            except CaseError as exc:
                if dom.isActive():   # running, yet silent: not a verdict
                    raise CaseError('%s; the domain is %s' % (
                        exc, self.state_text(dom))) from exc
                # The stack stopped the guest: judge its disk all the same.
                outcome['stopped'] = ('the guest was stopped after the '
                                      'migration (domain %s)'
                                      % self.state_text(dom))
            if dom.isActive():
                dom.destroy()
            # Read where the guest ran last, as its host would: another
            # node's GlusterFS client may serve stale pages (the soak
            # found it).
            node = self.dst if outcome['migrated'] else self.src
            verify_started = time.monotonic()
            report, _evidence = self.judge(inst, node)
            verify_s = time.monotonic() - verify_started
        except CaseError as exc:
            # A fault's notes say what the stack did before the harness
            # gave up (a post-copy recovery that failed, say).
            return self._result(case, expectation, 'ERROR', '; '.join(
                m for m in (str(exc), outcome.get('note')) if m),
                started, outcome)
        finally:
            conns = [c for c in (src_conn, dst_conn) if c]
            self.destroy_everywhere(inst, conns)
            inst.remove_files()
            for conn in conns:
                conn.close()
        if report.verdict == 'INTACT' and outcome.get('stopped'):
            verdict, message = 'STOPPED', '; '.join(
                m for m in (outcome['stopped'], outcome.get('error'),
                            outcome.get('note')) if m)
        elif report.verdict == 'INTACT' and case.fault:
            verdict, message = case.fault.verdict(outcome)
        elif report.verdict == 'INTACT' and not outcome['migrated']:
            verdict, message = 'REFUSED', outcome['error']
        else:
            verdict, message = report.verdict, report.message
            if outcome.get('error') and report.verdict != 'INTACT':
                message += '; migration: ' + outcome['error']
        result = self._result(case, expectation, verdict, message, started,
                              outcome)
        result.lost_writes = report.lost_writes
        result.corrupt_blocks = report.corrupt_blocks
        result.misplaced_blocks = report.misplaced_blocks
        result.stale_blocks = report.stale_blocks
        result.acked_writes = report.acked_writes
        result.first_offsets = list(report.first_offsets)[:10]
        result.writes_during_migration = acks_at_end - acks_at_start
        result.verify_s = round(verify_s, 3)
        return result

    def error_result(self, case, exc):
        """A case the harness could not run to its end."""
        return self._result(case, case.expectation(), 'ERROR',
                            '%s: %s' % (type(exc).__name__, exc),
                            time.monotonic(), {})

    def _result(self, case, expectation, verdict, message, started, outcome):
        agrees = (case.fault.agrees(verdict) if case.fault
                  else agreement(expectation, verdict, message))
        finding = '' if agrees else finding_text(expectation, verdict,
                                                 message)
        if case.fault and outcome and not outcome.get('fired'):
            # The case tested nothing: never an agreement.
            agrees = False
            finding = 'the fault was never injected (%s)' % message
        return Result(
            storage=case.storage, flag_set=case.name,
            flags=flags.names(case.flags), verdict=verdict,
            expected=str(expectation),
            expected_outcome=expectation.outcome.value,
            agrees=agrees,
            message=message, control=case.control,
            migrated=outcome.get('migrated', False),
            post_copy=outcome.get('post_copy', False),
            boot_s=round(outcome.get('boot_s', 0.0), 2),
            link_wait_s=round(outcome.get('link_wait_s', 0.0), 2),
            duration_s=round(time.monotonic() - started, 2),
            migration_s=round(outcome.get('seconds', 0.0), 2),
            downtime_ms=outcome.get('downtime_ms', 0),
            memory_bytes_transferred=outcome.get('memory_bytes', 0),
            disk_bytes_copied=outcome.get('disk_bytes', 0),
            finding=finding)

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
            if report.verdict == 'INTACT' or not evidence_dir:
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

    # -- the nemesis ------------------------------------------------------

    def migrate(self, case, inst, dom, dst_conn, dst=None, on_stats=None,
                bandwidth_mib=None, extra_flags=0, post_copy_after_s=None):
        """Migrate `dom` to `dst` (the second node unless told); return the
        outcome: migrated, error, seconds, post_copy, bytes, downtime.
        `on_stats(stats)` sees every sample of the source's job statistics
        (a nemesis acts on them); `bandwidth_mib` caps RAM too, post-copy
        included.  `extra_flags` are added to the case's own (a fault
        resumes a failed post-copy migration with POSTCOPY_RESUME);
        `post_copy_after_s` overrides the settings' delay of the switch."""
        lv = self.libvirt
        dst = dst or self.dst
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
            # without it post-copy ends before a nemesis can act in it.
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
        outcome = {'migrated': False, 'error': '', 'post_copy': resuming}
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
            outcome['migrated'] = True
        except lv.libvirtError as exc:
            outcome['error'] = outcome.get('timeout') or \
                exc.get_error_message()
        finally:
            done.set()
            watchdog.cancel()
            monitor.join()
            outcome['seconds'] = time.monotonic() - started
        if outcome['migrated']:
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
            except self.libvirt.libvirtError:
                continue
            if on_stats is not None:
                on_stats(stats)
            for key, name in (('disk_processed', 'disk_bytes'),
                              ('memory_processed', 'memory_bytes')):
                if key in stats:
                    outcome[name] = max(outcome.get(name, 0), stats[key])
            if post_copy and not outcome['post_copy'] and \
                    time.monotonic() >= switch_at and \
                    stats.get('memory_processed', 0) > 0:
                try:
                    dom.migrateStartPostCopy(0)
                    outcome['post_copy'] = True
                    LOG.debug('switched to post-copy after %d bytes of RAM',
                              stats['memory_processed'])
                except self.libvirt.libvirtError as exc:
                    # The RAM phase has not begun yet; ask again.
                    LOG.debug('migrateStartPostCopy: %s', exc)

    def _abort(self, dom, outcome):
        outcome['timeout'] = 'did not finish in %ds; aborted' % \
            self.settings.migration_timeout_s
        try:
            if outcome['post_copy']:
                # libvirt refuses a plain abort in post-copy, and the
                # migration call would go on waiting: pause it instead.
                dom.abortJobFlags(self.libvirt.VIR_DOMAIN_ABORT_JOB_POSTCOPY)
            else:
                dom.abortJob()
        except self.libvirt.libvirtError as exc:
            LOG.debug('abortJob: %s (the job may have ended)', exc)

    def _read_stats(self, dst_conn, inst, outcome):
        try:
            dom = dst_conn.lookupByUUIDString(inst.uuid)
            stats = dom.jobStats(self.libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        except self.libvirt.libvirtError:
            return
        # The destination's record of the finished job is the complete one
        # for RAM; the disk mirror's figures come from the source's samples.
        outcome['downtime_ms'] = int(stats.get('downtime', 0))
        outcome['memory_bytes'] = max(outcome.get('memory_bytes', 0),
                                      int(stats.get('memory_processed', 0)))
        outcome['disk_bytes'] = max(outcome.get('disk_bytes', 0),
                                    int(stats.get('disk_processed', 0)))

    def state_text(self, dom):
        """libvirt's state and reason of `dom`, by name where known."""
        lv = self.libvirt
        try:
            state, reason = dom.state()
        except lv.libvirtError as exc:
            return 'unknown (%s)' % exc.get_error_message()
        names = {getattr(lv, n): n[len('VIR_DOMAIN_'):] for n in (
            'VIR_DOMAIN_RUNNING', 'VIR_DOMAIN_PAUSED', 'VIR_DOMAIN_SHUTOFF',
            'VIR_DOMAIN_CRASHED', 'VIR_DOMAIN_BLOCKED')}
        return '%s (reason %d)' % (names.get(state, str(state)), reason)

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
                                    self.state_text(dom),
                                    historylib.ack_count(text), count, what))
            return False
        if test_utils.call_until_true(written, timeout, 0.1):
            return
        raise CaseError('guest wrote %d of %d acknowledged blocks within '
                        '%ds (%s)' % (self.ack_count(inst), count, timeout,
                                      what))

    def destroy_everywhere(self, inst, conns):
        for conn in conns:
            try:
                dom = conn.lookupByUUIDString(inst.uuid)
            except self.libvirt.libvirtError:
                continue
            try:
                if dom.isActive():
                    dom.destroy()
                if dom.isPersistent():
                    dom.undefine()
            except self.libvirt.libvirtError as exc:
                LOG.warning('%s: cannot remove %s: %s', conn.getURI(),
                            inst.name, exc)
