"""Faults during the migration: the lab's nemesis beyond the flags.

A fault is frozen data: its trigger (``phase``: the disk mirror has begun,
``disk``; the memory copy has begun, ``ram``; or the state ``post-copy``,
both sides switched, ``delay_s`` after it), the outcome written down before
the first run with where that expectation comes from, whether it disturbs
the nodes' link (a cut, a killed libvirtd: the case then holds the link
alone), when the lab heals it, and whether the migration is tried again.

Its injector has two verbs, ``inject()`` and ``heal()``, and is made anew
for each run; the pipeline (:mod:`fault_run`) owns the trigger, the time
bounds, the retries, the link and every per-run state.  A fault counts as
fired only once ``inject()`` has returned; an injection that raises makes
the case the harness's ERROR.
"""

import dataclasses
import os
import signal

import psutil

from migration_tempest_plugin import flags
from migration_tempest_plugin.lab import matrix
from migration_tempest_plugin.lab import results

POST_COPY = 'post-copy'


@dataclasses.dataclass(frozen=True)
class Fault:
    name: str
    injector: type              # an Injector subclass
    expectation: flags.Expectation
    phase: str                  # 'disk', 'ram' or POST_COPY
    delay_s: float = 0.0        # after the phase or state is reached
    # The lab heals the fault this long after it fired (0: once the
    # migration call has returned), and always after the migration call.
    heal_after_s: float = 0.0
    retry: bool = False         # migrate again after the fault
    disturbs_link: bool = False     # the case holds the nodes' link alone
    # Verdicts that agree with the expectation; by default only its own.
    also_accepted: tuple = ()

    def agrees(self, verdict):
        return verdict in ((self.expectation.outcome.value,)
                           + self.also_accepted)


@dataclasses.dataclass(frozen=True)
class Context:
    """What an injector acts on: the lab's libvirt module, the nodes, the
    guest and its domain on the source, the destination's connection."""
    lv: object
    src: object
    dst: object
    inst: object
    dom: object
    dst_conn: object
    fault: Fault


class Injector(object):
    """Acts on the lab or the migration; made for one run."""

    def __init__(self, ctx):
        self.ctx = ctx

    def inject(self):
        """Act; return a note for the report."""
        raise NotImplementedError

    def heal(self):
        """Undo what inject did to the lab (not to the guest).  Called
        once per run, whether inject() ran, failed or was never due."""


def _kill(pid, must_contain, start=None):
    """SIGKILL `pid` if it still is the process we mean: its command line
    names `must_contain` and, when known, it started at `start`."""
    proc = psutil.Process(pid)
    if must_contain not in ' '.join(proc.cmdline()) or (
            start is not None and proc.create_time() != start):
        raise results.CaseError('pid %d is not %s' % (pid, must_contain))
    proc.send_signal(signal.SIGKILL)


class AbortOnSource(Injector):
    def inject(self):
        self.ctx.dom.abortJob()
        return ''


class DestroyOnDestination(Injector):
    # No abortJob first: on the incoming domain libvirt 9.0 makes it wait
    # for the migration job to end (about 6 s here), then refuses it, "no
    # job is active on the domain"; the destroy then hit a guest that had
    # already migrated, and it ran nowhere (doc/source/faults.rst).
    def inject(self):
        self.ctx.dst_conn.lookupByUUIDString(self.ctx.inst.uuid).destroy()
        return 'the incoming domain destroyed'


class KillDestinationQemu(Injector):
    def inject(self):
        pid_file = os.path.join(self.ctx.dst.node_dir('run'), 'libvirt',
                                'qemu', self.ctx.inst.name + '.pid')
        with open(pid_file) as f:
            _kill(int(f.read().strip()), self.ctx.inst.name)
        return ''


class KillDestinationLibvirtd(Injector):
    def inject(self):
        daemon = self.ctx.dst.libvirtd_daemon()
        if not daemon:
            raise results.CaseError('no libvirtd running on %s'
                                    % self.ctx.dst.name)
        _kill(daemon.pid, 'libvirtd', daemon.create_time())
        return ''

    def heal(self):
        self.ctx.dst.start_libvirtd()
        self.ctx.dst.wait_libvirtd()


class CutNetwork(Injector):
    """Both nodes drop each other's packets (blackhole routes in their own
    namespaces) until healed: a partition, not a lost node.  The host and
    the storage node reach both throughout."""

    def _routes(self, verb):
        for node, other in ((self.ctx.src, self.ctx.dst),
                            (self.ctx.dst, self.ctx.src)):
            node.run(['ip', 'route', verb, 'blackhole',
                      other.address + '/32'], check=(verb == 'add'))

    def inject(self):
        self._routes('add')
        after = self.ctx.fault.heal_after_s
        if after and self.ctx.fault.phase != POST_COPY:
            return 'network cut for %ds' % after
        return 'network cut'

    def heal(self):
        self._routes('del')


class PauseSourcePostCopy(Injector):
    """The source pauses its post-copy migration (virsh domjobabort
    --postcopy): libvirt's own way to interrupt post-copy, which leaves it
    resumable."""

    def inject(self):
        self.ctx.dom.abortJobFlags(self.ctx.lv.VIR_DOMAIN_ABORT_JOB_POSTCOPY)
        return 'abortJobFlags(ABORT_JOB_POSTCOPY) on the source was accepted'


class AbortDestinationPostCopy(Injector):
    """The destination's job is aborted after the switch to post-copy,
    with the flag that makes libvirt pause rather than refuse."""

    def inject(self):
        lv = self.ctx.lv
        incoming = self.ctx.dst_conn.lookupByUUIDString(self.ctx.inst.uuid)
        try:
            incoming.abortJobFlags(lv.VIR_DOMAIN_ABORT_JOB_POSTCOPY)
        except lv.libvirtError as exc:
            return 'abortJobFlags(ABORT_JOB_POSTCOPY) on the destination ' \
                'refused: %s' % exc.get_error_message()
        return 'abortJobFlags(ABORT_JOB_POSTCOPY) on the destination was ' \
            'accepted'


# Under libvirt's keepalive for peer-to-peer migration (qemu.conf: 5 s x
# 5): the cut tests a stall that TCP rides out, not a lost peer.
CUT_SECONDS = 10
# libvirt shows the destination RUNNING once QEMU's RESUME event comes,
# before its `cont` returns.  A pause in that window (about 0.1 s) left the
# destination QEMU unanswering and the migration call hung in 2 of 3 runs
# (doc/source/faults.rst); the cases test the post-copy phase proper, and
# what libvirt promises there.
AFTER_SWITCH_S = 1
# A post-copy fault is healed then, whatever libvirt did.
POST_COPY_HEAL_S = 60


def _safe(reason):
    return flags.Expectation(flags.Outcome.FAILED_SAFE, reason)


def _fault(injector, name, phase, expectation, **kw):
    if phase == POST_COPY:
        kw.setdefault('delay_s', AFTER_SWITCH_S)
        kw.setdefault('heal_after_s', POST_COPY_HEAL_S)
    return Fault(name, injector, expectation, phase, **kw)


def fault_cases():
    """Every fault case, each with its expected outcome and its source."""
    by_name = {fs.name: fs for fs in matrix.flag_sets()}
    block, live = by_name['nova-block'], by_name['nova-live']
    post_copy = by_name['nova-live+post-copy']
    return [
        matrix.Case('local', block, fault=_fault(
            AbortOnSource, 'abort-source', 'disk', flags.Expectation(
                flags.Outcome.INTACT,
                'virDomainAbortJob cancels the mirror and the migration; the '
                'guest runs on at the source, the destination drops the '
                'incoming domain, and a second migration succeeds (nova '
                'live_migration_abort, 2.24)'), retry=True)),
        matrix.Case('local', block, fault=_fault(
            DestroyOnDestination, 'destroy-destination', 'disk', _safe(
                'an incoming migration cannot be aborted on the destination '
                '(libvirt: use virDomainDestroy instead); destroying it '
                'fails the migration at the source, which resumes the '
                'guest'))),
        matrix.Case('local', block, fault=_fault(
            KillDestinationQemu, 'kill-destination-qemu', 'disk', _safe(
                'the source sees the migration stream and the NBD mirror '
                'target close, fails the job and keeps the guest running'))),
        matrix.Case('shared', live, fault=_fault(
            KillDestinationQemu, 'kill-destination-qemu', 'ram', _safe(
                'the migration stream closes during the RAM phase; the '
                'source still owns the disk and resumes'))),
        matrix.Case('local', block, fault=_fault(
            KillDestinationLibvirtd, 'kill-destination-libvirtd', 'disk',
            _safe(
                "the source's peer-to-peer connection to the destination "
                'dies, so it aborts the job; the restarted destination '
                'libvirtd kills the incoming QEMU it finds on reconnect'),
            disturbs_link=True)),
        matrix.Case('local', block, fault=_fault(
            CutNetwork, 'cut-network', 'disk', flags.Expectation(
                flags.Outcome.INTACT,
                'the disk mirror and the RAM stream stall for 10 s and go '
                "on when the network is back (TCP retransmits; libvirt's "
                'keepalive, 5 s x 5, may instead end the job first: then '
                'the source keeps the guest, FAILED-SAFE)'),
            disturbs_link=True, heal_after_s=CUT_SECONDS,
            also_accepted=(results.Verdict.FAILED_SAFE,))),
        matrix.Case('shared', live, fault=_fault(
            CutNetwork, 'cut-network', 'ram', flags.Expectation(
                flags.Outcome.INTACT,
                'as during the disk copy: before the switch-over the source '
                'owns the guest; the migration resumes or fails safe'),
            disturbs_link=True, heal_after_s=CUT_SECONDS,
            also_accepted=(results.Verdict.FAILED_SAFE,))),
        # Ceph RBD: no disk copy (libvirt refuses INC on an RBD disk), so
        # the faults of the memory copy and of post-copy; the storage
        # node stays reachable from both throughout.
        matrix.Case('rbd', live, fault=_fault(
            KillDestinationQemu, 'kill-destination-qemu', 'ram', _safe(
                'the migration stream closes during the RAM phase; the '
                'source still holds the RBD image (the dead QEMU never '
                'wrote, so it never took the exclusive lock) and resumes'))),
        matrix.Case('rbd', live, fault=_fault(
            CutNetwork, 'cut-network', 'ram', flags.Expectation(
                flags.Outcome.INTACT,
                'the RAM stream stalls for 10 s while both QEMUs still '
                'reach Ceph; the migration resumes or fails safe'),
            disturbs_link=True, heal_after_s=CUT_SECONDS,
            also_accepted=(results.Verdict.FAILED_SAFE,))),
        matrix.Case('rbd', post_copy, fault=_fault(
            PauseSourcePostCopy, 'pause-source-post-copy', POST_COPY,
            flags.Expectation(
                flags.Outcome.INTACT,
                'as on shared storage: post-copy pauses, the destination '
                'keeps the guest and is the only writer of the RBD image '
                '(librbd moves the exclusive lock to it on its first '
                'write); POSTCOPY_RESUME completes the migration, intact'))),
        # Written before the first run: keepalive fails the job, the source
        # pauses, the destination keeps the guest, POSTCOPY_RESUME after
        # the heal recovers it.  Seen instead (libvirt 9.0, QEMU 7.2, see
        # doc/source/faults.rst): the resume is refused while QEMU's own
        # stream survives the cut, and that stream ends the migration.
        matrix.Case('shared', post_copy, fault=_fault(
            CutNetwork, 'cut-network-post-copy', POST_COPY,
            flags.Expectation(
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
            disturbs_link=True)),
        matrix.Case('shared', post_copy, fault=_fault(
            PauseSourcePostCopy, 'pause-source-post-copy', POST_COPY,
            flags.Expectation(
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
        matrix.Case('shared', post_copy, fault=_fault(
            AbortDestinationPostCopy, 'abort-destination-post-copy',
            POST_COPY, flags.Expectation(
                flags.Outcome.INTACT,
                'libvirt pauses post-copy only from the source: on the '
                'incoming domain virDomainAbortJobFlags('
                'VIR_DOMAIN_ABORT_JOB_POSTCOPY) is refused ("current job is '
                'not outgoing migration in post-copy mode", libvirt 9.0), '
                'so the migration goes on and completes, intact'))),
    ]
