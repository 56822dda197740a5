"""``shared-nolock``: one host folder seen by each node through its own
``bindfs`` FUSE mount.

Both nodes see the same bytes, but each FUSE mount keeps its locks to
itself, so neither QEMU sees the other's image lock (as NFSv3 with
``nolock``, or QEMU before 2.10), and libvirt does not consider it shared.
This is the mode where copying a disk over itself can happen.
"""

import os

from migration_tempest_plugin import flags
from migration_tempest_plugin.lab.storage import base

Outcome = flags.Outcome


def bindfs_argv(source, mountpoint):
    """bindfs in the foreground; locks stay local to this mount (no
    --enable-lock-forwarding), which is the point of the mode."""
    return ['bindfs', '-f', '-o', 'fsname=lab-nolock', source, mountpoint]


class SharedNolock(base.FuseMounts, base.StorageMode):
    name = 'shared-nolock'
    packages = {'bindfs': 'bindfs'}
    fuse = True

    def folder(self, lab):
        return base.state_dir(lab, 'shared-nolock')

    def host_base(self, lab, node):
        return self.folder(lab)

    def up(self, lab, say):
        os.makedirs(self.folder(lab), exist_ok=True)
        for node in lab.nodes:
            log = os.path.join(lab.log_dir, 'bindfs-%s.log' % node.name)
            self.node_fuse_up(lab, node, 'bindfs-' + node.name,
                              bindfs_argv(self.folder(lab), self.path), log,
                              say)

    def down(self, lab, say, problems):
        self.node_fuse_down(lab, problems)

    def daemon_keys(self, lab):
        return ['bindfs-' + node.name for node in lab.nodes]

    def node_status(self, lab, node, mounts):
        return self.fuse_status(lab, node, mounts, 'bindfs-')

    def expect(self, value):
        # Same files, but no lock crosses hosts and libvirt does not know
        # the filesystem as shared (virFileIsSharedFS()).
        if base.copies(value):
            # bug #1499041 (8ecf93e88a), the seed thread: the disk is
            # mirrored onto itself while the guest writes to it.
            return base.expectation(
                Outcome.DATA_AT_RISK, 'disk copied over itself while the '
                'guest writes (bug #1499041)')
        if not flags.has(value, 'UNSAFE'):
            return base.expectation(
                Outcome.REFUSED_BY_LIBVIRT, 'libvirt does not know this '
                'filesystem as shared', flags.UNSAFE_MESSAGE)
        return base.expectation(
            Outcome.INTACT, "shared files, nothing copied; UNSAFE only skips "
            "libvirt's filesystem check")


MODE = SharedNolock
