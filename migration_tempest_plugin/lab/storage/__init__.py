"""The lab's storage modes, found through the registry
(:mod:`migration_tempest_plugin.storage_modes`): one module per mode in
this folder, each a class behind the interface of :mod:`.base`.

Here: finding a mode, the expectation rules that hold for every mode
(libvirt's flag checks, nova's pre-checks) before the mode's own, and
``Storage``, which brings a lab's modes up and down.
"""

import contextlib
import importlib
import os

from tempest.lib.common.utils import test_utils

from migration_tempest_plugin import flags
from migration_tempest_plugin.lab.storage import base
from migration_tempest_plugin import runtime as rt
from migration_tempest_plugin import storage_modes

StorageError = base.StorageError
storage_path = base.storage_path
MOUNT_BASE = base.MOUNT_BASE
SERVER_ADDRESS = base.SERVER_ADDRESS

_MODES = {}


def mode(name):
    """The StorageMode registered as `name` (or one of its aliases)."""
    try:
        entry = storage_modes.entry(name)
    except storage_modes.UnknownMode as exc:
        raise StorageError(str(exc)) from None
    if entry.name not in _MODES:
        module = importlib.import_module('%s.%s' % (__name__, entry.module))
        _MODES[entry.name] = module.MODE()
    return _MODES[entry.name]


def modes(names=storage_modes.NAMES):
    return [mode(name) for name in names]


def check_mode(name):
    return mode(name).name


# -- what a migration does to a disk, by storage ------------------------------

# A guest paused before a disk-copying migration: libvirt migrates it
# paused (the vCPUs stay stopped and the guest arrives paused; the lab
# resumes it there, as nova's unpause would), and QEMU's vm_stop() drained
# and flushed every disk when it was paused.  The NBD
# mirror (block-dirty-bitmap + blockdev-mirror, sync top) then reads each
# allocated block of the overlay and writes it to the destination's export
# of the same file: with nothing writing meanwhile, it writes back the very
# bytes it read, into clusters already allocated there, and the seed's loss
# (a guest write overtaken by an older copy of its block) cannot happen.
PAUSED_REASON = (
    'the guest is paused through the copy (libvirt migrates a paused '
    'domain paused; QEMU drained and flushed its disks when it stopped), '
    'so the mirror writes back onto the same file the very bytes it read: '
    'no acknowledged write can be lost. With a guest writing: %s')


def expect(value, storage, via_nova=False, paused=False):
    """The expected outcome of migrating a guest whose disks are on
    `storage` with flags `value`.

    via_nova: the migration was asked of nova, whose pre-checks run first
    (block_migration derived from the flags: NON_SHARED_* means nova was
    asked for a block migration).  paused: the guest is paused before the
    migration and stays paused through it.
    """
    value = flags.parse(value)
    storage = mode(storage)
    copies = base.copies(value)
    if via_nova:
        # nova/virt/libvirt/driver.py check_can_live_migrate_source(): the
        # test-file handshake sees both hosts share the instances path.
        if copies and storage.shared:
            return base.expectation(
                flags.Outcome.REFUSED_BY_NOVA,
                'block migration asked on shared storage',
                'Block migration can not be used with shared storage.')
        # bug #1690890, 902b7bf6f5.
        if not copies and not storage.shared:
            return base.expectation(
                flags.Outcome.REFUSED_BY_NOVA,
                'live migration without shared storage',
                'Shared storage live-migration requires either shared '
                'storage or boot-from-volume with no local disks.')
    message = flags.libvirt_refusal(value)
    if message:
        return base.expectation(flags.Outcome.REFUSED_BY_LIBVIRT,
                                'libvirt rejects this flag combination',
                                message)
    rule = storage.expect(value)
    if paused and rule.outcome is flags.Outcome.DATA_AT_RISK:
        return base.expectation(flags.Outcome.INTACT,
                                PAUSED_REASON % rule.reason)
    return rule


# -- mounts ----------------------------------------------------------------

def node_binds(lab, node):
    """Bind mounts of a node's sandbox for storage: its own /srv (holding
    the mount points of every mode), then each mode's own."""
    for name in storage_modes.NAMES:
        os.makedirs(base.node_mount_point(node, name), exist_ok=True)
    binds = [(os.path.join(node.dir, 'srv'), base.MOUNT_BASE)]
    for m in modes(lab.modes):
        binds += m.node_binds(lab, node)
    return binds


# The storage sandbox's own folders: (folder under <state>/gluster, target).
SERVER_BINDS = (('run', '/run'), ('srv', base.MOUNT_BASE))


def served(names):
    return any(mode(name).served for name in names)


def server_binds(lab, sandbox):
    """The storage sandbox's binds: a private /run and /srv, then what its
    served modes add."""
    for sub, _dst in SERVER_BINDS:
        os.makedirs(os.path.join(sandbox.dir, sub), exist_ok=True)
    binds = [(os.path.join(sandbox.dir, sub), dst)
             for sub, dst in SERVER_BINDS]
    for m in modes(lab.modes):
        if m.served:
            binds += m.server_binds(lab, sandbox)
    return binds


def host_dirs_needed(names):
    """Folders that must exist on the host for a bind mount over them."""
    if not served(names):
        return []
    out = [dst for _s, dst in SERVER_BINDS]
    for m in modes(names):
        out += [d for d in m.host_dirs() if d not in out]
    return out


def packages(names):
    """{binary or plug-in file: Debian package} of these modes."""
    out = {}
    for m in modes(names):
        out.update(m.packages)
    return out


class Storage(object):
    """Brings the storage modes of a lab up and down, and says how they
    are."""

    def __init__(self, lab):
        self.lab = lab

    @property
    def modes(self):
        return modes(self.lab.modes)

    def host_path(self, node, name, relpath=''):
        """Host-side path of the file `node` sees at
        storage_path(name)/relpath."""
        m = mode(name)
        if m.name not in self.lab.modes:
            raise StorageError('storage mode %s is not part of this lab (%s)'
                               % (m.name, ', '.join(self.lab.modes)))
        rel = base.relative_path(m.name, relpath)
        folder = m.host_base(self.lab, node)
        return os.path.join(folder, rel) if rel else folder

    def up(self, say):
        # Served modes first: their server must answer before any client.
        for m in sorted(self.modes, key=lambda m: not m.served):
            m.up(self.lab, say)

    def down(self, say, problems):
        """Unmount the FUSE mounts (the daemons then exit; the lab ends
        whatever is left by PID)."""
        keys = []
        for m in self.modes:
            with contextlib.suppress(rt.LabError):
                m.down(self.lab, say, problems)
            keys += m.daemon_keys(self.lab)
        # Give the node clients a moment to notice their unmount.
        test_utils.call_until_true(
            lambda: not any(self.lab.procs.pid(k) for k in keys), 5, 0.1)

    def node_status(self, node):
        """{mode: file system type of its mount in the node, or None when
        it is not usable}."""
        mounts = node.mounts()
        return {m.name: m.node_status(self.lab, node, mounts)
                for m in self.modes}

    def status(self):
        """{status key: its server's status} and whether all are fine."""
        out, ok = {}, True
        for m in self.modes:
            st = m.status(self.lab)
            if st is not None:
                out[m.status_key] = st
                ok = ok and m.status_ok(st)
        return out, ok
