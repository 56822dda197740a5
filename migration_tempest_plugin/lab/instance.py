"""One lab instance, laid out the way nova's libvirt driver lays it out.

instances/_base/<sha1 of the image id> is the raw image (the oracle's
pre-filled disk), instances/<uuid>/disk a qcow2 overlay on it, and the
domain boots the lab guest's kernel and initramfs with that disk as vda.
On the ``nfs`` mode the disk is a network disk that QEMU opens over NFS,
and the overlay names its base by its ``nfs://`` URL; on ``rbd`` both are
raw RBD images, the disk a clone of the base's snapshot, as nova makes
them (``vms/<uuid>_disk``, ``vms/_base_<sha1>@base``).
"""

import hashlib
import os
import uuid as uuidlib
from xml.sax import saxutils

from migration_tempest_plugin.integrity import guest as guestlib
from migration_tempest_plugin.lab import storage as storagelib

GUEST_MEMORY_MIB = 128
EPHEMERAL_MIB = 16


def base_name(image_id):
    # nova's image cache names a base file by the sha1 of the image id.
    return hashlib.sha1(image_id.encode()).hexdigest()


class Instance(object):
    """Files and domain definition of one guest on one storage mode."""

    def __init__(self, lab, storage, guest, layout, console_dir=None,
                 cache='none', base_storage=None, ephemeral_storage=None):
        self.lab = lab
        self.storage = storage
        self.guest = guest
        self.layout = layout
        self.cache = cache
        # nova's image cache (_base) may sit on other storage than the
        # instance disks: a shared base under local overlays.
        self.base_storage = base_storage or storage
        self.uuid = str(uuidlib.uuid4())
        self.name = 'mtp-%s' % self.uuid[:8]
        self.instances_path = lab.storage_path(storage)
        self.disk_rel = '%s/disk' % self.uuid
        self.base_rel = '_base/%s' % base_name(layout.image_id)
        self.disk = os.path.join(self.instances_path, self.disk_rel)
        self.base = os.path.join(lab.storage_path(self.base_storage),
                                 self.base_rel)
        # A second, empty disk (vdb; nova's ephemeral disk.local), on its
        # own storage mode when asked for.
        self.ephemeral_storage = ephemeral_storage
        self.ephemeral_rel = '%s/disk.local' % self.uuid
        self.ephemeral = os.path.join(
            lab.storage_path(ephemeral_storage), self.ephemeral_rel) \
            if ephemeral_storage else None
        self.console_log = os.path.join(console_dir, '%s.log' % self.name)

    # -- files ------------------------------------------------------------

    def _nodes_with_own(self, storage):
        return storagelib.mode(storage).nodes_with_own_copy(self.lab.nodes)

    def nodes_with_own_files(self):
        """Nodes whose view of the instances path is their own copy."""
        return self._nodes_with_own(self.storage)

    def nodes_with_own_base(self):
        return self._nodes_with_own(self.base_storage)

    def ensure_base(self, node):
        """Write the pristine base image where `node` will look for it,
        once per layout (nova's image cache does the same)."""
        layout = self.layout
        storagelib.mode(self.base_storage).write_image(
            self.lab, node, self.base_rel,
            lambda path: guestlib.write_base_disk(
                path, layout.static_count, layout.work_count,
                layout.image_id, layout.zero_every))

    def create_disks(self, node, local_only=False):
        """The disk over its base (a qcow2 overlay; an RBD clone on rbd)
        and the ephemeral disk, created inside the node as nova-compute
        would.  local_only: only those on local
        storage, which nova pre-creates on the destination of a block
        migration."""
        if not local_only or not storagelib.mode(self.storage).shared:
            if node in self.nodes_with_own_base():
                self.ensure_base(node)
            node.run(['mkdir', '-p', os.path.dirname(self.disk)])
            # qcow2 drops a discard smaller than its cluster (64 KiB by
            # default); a guest that discards 4 KiB blocks gets 4 KiB
            # clusters, or none of its discards would reach the image.
            options = ['-o', 'cluster_size=4096'] \
                if self.layout.zero_every else []
            storagelib.mode(self.storage).create_disk(
                self.lab, node, self.disk_rel, self.layout.size_bytes,
                base=(storagelib.mode(self.base_storage), self.base_rel),
                options=options)
        if self.ephemeral and (
                not local_only
                or not storagelib.mode(self.ephemeral_storage).shared):
            node.run(['mkdir', '-p', os.path.dirname(self.ephemeral)])
            storagelib.mode(self.ephemeral_storage).create_disk(
                self.lab, node, self.ephemeral_rel,
                EPHEMERAL_MIB * 1024 * 1024)

    def remove_files(self):
        for node in self.nodes_with_own_files():
            storagelib.mode(self.storage).remove(self.lab, node, self.uuid)
        if self.ephemeral:
            for node in self._nodes_with_own(self.ephemeral_storage):
                storagelib.mode(self.ephemeral_storage).remove(
                    self.lab, node, self.uuid)
        if os.path.exists(self.console_log):
            os.unlink(self.console_log)

    def flatten(self, node, out_path):
        """The guest-visible disk content, as one raw file on the host,
        read as the guest's QEMU reads it (cache=none: O_DIRECT, past the
        node's page cache, which on a GlusterFS client that did not write
        the file can still hold stale pages right after a migration)."""
        mode = storagelib.mode(self.storage)
        node.run(['qemu-img', 'convert', '-U', '-T', 'none', '-f',
                  mode.disk_format, '-O', 'raw',
                  mode.read_name(self.disk_rel), out_path])
        return out_path

    # -- domain -----------------------------------------------------------

    def disk_xml(self, storage, path, target):
        q = saxutils.quoteattr
        kind, source = storagelib.mode(storage).disk_source(path)
        # A guest that zeroes and discards needs the disk to pass discards
        # on (else blkdiscard fails; nova's hw_disk_discard=unmap sets the
        # same) and its zero writes turned into write-zeroes requests.
        unmap = (" discard='unmap' detect_zeroes='unmap'"
                 if self.layout.zero_every else '')
        return """<disk type='{kind}' device='disk'>
      <driver name='qemu' type={format} cache={cache}{unmap}/>
      {source}
      <target dev={target} bus='virtio'/>
    </disk>""".format(kind=kind, source=source, cache=q(self.cache),
                      format=q(storagelib.mode(storage).disk_format),
                      unmap=unmap, target=q(target))

    def disks_xml(self):
        out = [self.disk_xml(self.storage, self.disk, 'vda')]
        if self.ephemeral:
            out.append(self.disk_xml(self.ephemeral_storage, self.ephemeral,
                                     'vdb'))
        return '\n    '.join(out)

    def domain_xml(self):
        q = saxutils.escape
        return """<domain type='qemu'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>{mem}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    {disk}
    <serial type='file'>
      <source path='{console}' append='on'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
""".format(name=q(self.name), uuid=self.uuid, mem=GUEST_MEMORY_MIB,
           kernel=q(self.guest.kernel), initrd=q(self.guest.initrd),
           cmdline=q(self.guest.cmdline.strip()), disk=self.disks_xml(),
           console=q(self.console_log))

    def console_text(self):
        try:
            with open(self.console_log, 'rb') as f:
                return f.read().decode('ascii', 'replace')
        except FileNotFoundError:
            return ''
