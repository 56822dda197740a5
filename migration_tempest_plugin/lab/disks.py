"""Disk set-ups beside the matrix's default one.

Every matrix case boots its guest on one qcow2 overlay with ``cache=none``
whose base sits beside it on the same storage mode.  A case here changes
one of those: the cache mode, where the base image lives, a second disk
on other storage with the disks to copy chosen (``migrate_disks``), or a
guest that also zeroes and discards blocks while it writes.  Each is a
matrix case with its expected outcome written down before its first run,
and where that expectation comes from.
"""

import dataclasses

from migration_tempest_plugin import flags
from migration_tempest_plugin.lab import matrix


@dataclasses.dataclass(frozen=True)
class DiskSetup:
    name: str                    # added to the case's name
    expectation: flags.Expectation
    cache: str = 'none'          # the disk's <driver cache=...>
    base_storage: str = ''       # the base image's mode, if not the disk's
    ephemeral_storage: str = ''  # a second disk (vdb) on this mode
    copy: tuple = ()             # migrate_disks when copying (default vda)
    # every k-th guest write empties its block instead, by write-zeroes
    # and by discard in turn (blocks.Layout.op); 0: never
    zero_every: int = 0


# One write in four empties its block: one in eight is a write-zeroes, one
# in eight a discard, often enough that many land during the disk copy.
ZERO_EVERY = 4


def disk_cases():
    by_name = {fs.name: fs for fs in matrix.flag_sets()}
    block, live = by_name['nova-block'], by_name['nova-live']
    intact = flags.Outcome.INTACT
    return [
        # libvirt's qemuMigrationSrcIsSafe(): a file on a shared filesystem
        # with a cache other than none/directsync is safe when QEMU can drop
        # its page cache (QEMU >= 4.0, file-posix drop-cache); the source
        # flushes when it hands the disk over, the destination drops what
        # its host had cached.
        matrix.Case('shared', live, disks=DiskSetup(
            'writeback', flags.Expectation(
                intact, 'cache=writeback on shared storage: libvirt allows '
                'it because QEMU drops the page cache on the destination '
                'when it takes the disk over (drop-cache, QEMU >= 4.0)'),
            cache='writeback')),
        matrix.Case('nfs', live, disks=DiskSetup(
            'writeback', flags.Expectation(
                intact, "a network disk is safe to libvirt whatever its "
                "cache; QEMU's NFS client keeps no page cache, and the "
                'source flushes before the destination takes over'),
            cache='writeback')),
        # librbd has a cache of its own (rbd_cache), which QEMU turns on
        # with cache=writeback and off with none.
        matrix.Case('rbd', live, disks=DiskSetup(
            'writeback', flags.Expectation(
                intact, "a network disk is safe to libvirt whatever its "
                "cache; the source QEMU flushes librbd's writeback cache "
                'when it hands the disk over, before the destination '
                'opens the image'),
            cache='writeback')),
        matrix.Case('local', block, disks=DiskSetup(
            'writeback', flags.Expectation(
                intact, 'the mirror reads through QEMU, which sees its own '
                'cached writes; the copy goes to a separate file'),
            cache='writeback')),
        # nova's image cache on shared storage with local instance disks:
        # NON_SHARED_INC copies only the top image ("sync: top"), and the
        # destination's pre-created overlay reads the rest from the same
        # base (libvirt-migration reference, section 3).
        matrix.Case('local', block, disks=DiskSetup(
            'shared-base', flags.Expectation(
                intact, 'NON_SHARED_INC copies the overlay only; both hosts '
                'read the one base on shared storage, which nobody '
                'writes'),
            base_storage='shared')),
        # Two disks, the writing one (vda) on shared storage and an empty
        # one (vdb) on each host's own folder.  qemuMigrationSrcIsSafe()
        # judges every disk that is not copied: a local one left out fails
        # the check; named in migrate_disks, it is copied and the shared
        # one is left alone.
        matrix.Case('shared', live, disks=DiskSetup(
            'local-vdb-left-out', flags.Expectation(
                flags.Outcome.REFUSED_BY_LIBVIRT,
                'vdb is on local storage and nothing copies it',
                flags.UNSAFE_MESSAGE),
            ephemeral_storage='local')),
        matrix.Case('shared', block, disks=DiskSetup(
            'local-vdb-copied', flags.Expectation(
                intact, 'migrate_disks names vdb only: it is copied to the '
                'copy nova pre-created, and vda stays on shared storage, '
                'not copied onto itself'),
            ephemeral_storage='local', copy=('vdb',))),
        # The guest zeroes and discards blocks during the migration (the
        # disk has discard='unmap' and detect_zeroes='unmap', as nova sets
        # with hw_disk_discard=unmap).  QEMU's mirror marks what the guest
        # zeroes or discards as dirty like any write and repeats it on the
        # target as a zero write or a discard (mirror_do_zero_or_discard);
        # the bugs fixed there brought old data back on the target.
        matrix.Case('local', block, disks=DiskSetup(
            'zero-discard', flags.Expectation(
                intact, 'NON_SHARED_INC: the mirror repeats each zeroing and '
                'discard on the copy; nothing older than the last '
                'acknowledged operation comes back'),
            zero_every=ZERO_EVERY)),
        matrix.Case('local', by_name['raw-non-shared-disk'], disks=DiskSetup(
            'zero-discard', flags.Expectation(
                intact, 'NON_SHARED_DISK: the full copy of the chain skips '
                'zeroed areas on the target it created; what the guest '
                'zeroes or discards meanwhile is dirty and copied again'),
            zero_every=ZERO_EVERY)),
        matrix.Case('shared', live, disks=DiskSetup(
            'zero-discard', flags.Expectation(
                intact, 'nothing is copied: zeroed and discarded clusters '
                'are qcow2 metadata in the one shared file, flushed by the '
                'source before the destination opens it'),
            zero_every=ZERO_EVERY)),
        matrix.Case('rbd', live, disks=DiskSetup(
            'zero-discard', flags.Expectation(
                intact, 'nothing is copied: qcow2 zeroes and discards '
                'clusters in the one RBD image (librbd discards objects), '
                'flushed by the source before the destination opens it'),
            zero_every=ZERO_EVERY)),
        matrix.Case('nfs', live, disks=DiskSetup(
            'zero-discard', flags.Expectation(
                intact, "QEMU's nfs driver has no discard (ignored, so the "
                'block may keep its data) and writes zeros as data; no '
                'copy, one file'),
            zero_every=ZERO_EVERY)),
    ]
