"""``local``: a folder per node, bound at /srv/lab/local.

What a node writes there the other does not see; libvirt does not consider
it shared, so a live migration must copy the disks (VIR_MIGRATE_NON_SHARED_*).
"""

import os

from migration_tempest_plugin import flags
from migration_tempest_plugin.lab.storage import base

Outcome = flags.Outcome


class Local(base.StorageMode):
    name = 'local'
    shared = False

    def folder(self, lab, node):
        return base.state_dir(lab, 'local', node.name)

    def host_base(self, lab, node):
        return self.folder(lab, node)

    def node_binds(self, lab, node):
        os.makedirs(self.folder(lab, node), exist_ok=True)
        return [(self.folder(lab, node), self.path)]

    def up(self, lab, say):
        for node in lab.nodes:
            os.makedirs(self.folder(lab, node), exist_ok=True)

    def expect(self, value):
        if base.copies(value):
            return base.expectation(
                Outcome.INTACT, 'each host has its own disk; the copy goes '
                'to a separate file')
        if flags.has(value, 'UNSAFE'):
            # UNSAFE skips the shared-storage check, but nothing copies the
            # disk: the destination QEMU finds no file (seen in the lab,
            # libvirt 9.0). Where a stale copy sits at that path, the guest
            # would run on it instead.
            return base.expectation(
                Outcome.REFUSED_BY_LIBVIRT, 'UNSAFE skips the shared-storage '
                'check, but the destination has no copy of the disk',
                flags.NO_DISK_MESSAGE)
        # qemuMigrationSrcIsSafe(): local filesystem, no copy.
        return base.expectation(
            Outcome.REFUSED_BY_LIBVIRT, 'no disk copy and the disk is not on '
            'shared storage', flags.UNSAFE_MESSAGE)


MODE = Local
