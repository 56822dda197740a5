"""What every storage mode of the lab is: one interface, and the paths and
mount helpers the modes share.

A mode answers, for a lab and its nodes:

* ``packages``: binaries and plug-ins it needs -> their Debian packages;
* ``up``/``down``/``node_status``/``status``: its daemons and mounts;
* ``node_binds``/``server_binds``: what the nodes' and the storage
  sandbox's mount namespaces bind for it;
* ``qemu_name``/``disk_source``/``read_name``: how QEMU and libvirt name a
  disk on it, and how the oracle's read-back does;
* ``write_image``/``create_disk``/``remove``: how a base image gets
  there, how an instance's disks are made on it (``disk_format``) and how
  they go (a host file, ``qemu-img create`` and ``rm`` unless the mode
  does otherwise);
* ``nodes_with_own_copy``: which nodes hold their own copy of a file;
* ``expect``: what a migration with given flags does to a disk on it, each
  rule with its source (libvirt's flag checks and nova's pre-checks, which
  hold for every mode, come first: ``lab.storage.expect``).

Every mode is seen at the same path inside both nodes:
``/srv/lab/<mode>``, as nova's instances path is the same on every host.
"""

import os
from xml.sax import saxutils

from migration_tempest_plugin import errors
from migration_tempest_plugin import flags
from migration_tempest_plugin import runtime as rt
from migration_tempest_plugin import storage_modes

MOUNT_BASE = '/srv'
STORAGE_ROOT = '/srv/lab'
# The storage sandbox (network namespace lab-gl), which serves the modes
# whose server runs in the lab (GlusterFS, NFS).
SERVER_ADDRESS = '10.254.0.253'


class StorageError(errors.Error, ValueError):
    """Raised for a bad storage mode or path (a LabError is raised for a
    failing daemon)."""


def storage_path(mode):
    """The path of a storage mode inside both nodes."""
    try:
        name = storage_modes.entry(mode).name
    except storage_modes.UnknownMode as exc:
        raise StorageError(str(exc)) from None
    return '%s/%s' % (STORAGE_ROOT, name)


def relative_path(mode, relpath):
    """`relpath` under storage_path(mode), refusing escapes; an absolute
    in-node path under storage_path(mode) is accepted too."""
    root = storage_path(mode)
    relpath = str(relpath)
    if os.path.isabs(relpath):
        norm = os.path.normpath(relpath)
        if norm != root and not norm.startswith(root + '/'):
            raise StorageError('%s is not under %s' % (relpath, root))
        relpath = os.path.relpath(norm, root)
    norm = os.path.normpath(relpath) if relpath else '.'
    if norm == '..' or norm.startswith('../'):
        raise StorageError('%s escapes %s' % (relpath, root))
    return '' if norm == '.' else norm


def node_mount_point(node, mode):
    """Host side of the mount point folder inside the node's /srv."""
    return os.path.join(node.dir, 'srv',
                        os.path.relpath(storage_path(mode), MOUNT_BASE))


def state_dir(lab, *parts):
    """A folder of the storage modes under the lab's state folder."""
    return os.path.join(lab.state_dir, 'storage', *parts)


def host_mount_type(target):
    m = rt.top_mount(rt.host_mounts(), target)
    return m['fstype'] if m else None


def copies(value):
    """The flags copy disks (VIR_MIGRATE_NON_SHARED_*)."""
    return flags.has(value, 'NON_SHARED_DISK') or flags.has(
        value, 'NON_SHARED_INC')


def expectation(outcome, reason, message=''):
    return flags.Expectation(outcome, reason, message)


class StorageMode(object):
    """One storage mode.  Stateless: each method is told the lab."""

    name = ''
    packages = {}           # binary or plug-in file -> Debian package
    # Every node sees one and the same file (nova's shared-storage
    # handshake, a test file written on one host and seen on the other,
    # passes); False: each node has its own.
    shared = True
    served = False          # its server runs in the storage sandbox
    fuse = False            # it mounts FUSE file systems
    status_key = ''         # its server's entry in Lab.status()
    disk_format = 'qcow2'   # of an instance's disks (create_disk)

    @property
    def path(self):
        return storage_path(self.name)

    def __repr__(self):
        return '<storage mode %s>' % self.name

    # -- files --------------------------------------------------------------

    def host_base(self, lab, node):
        """The host folder behind `node`'s view of the mode."""
        raise NotImplementedError

    def nodes_with_own_copy(self, nodes):
        """The nodes whose view of a file of this mode is their own copy
        (one node stands for all when the file is shared)."""
        return list(nodes) if not self.shared else list(nodes)[:1]

    def qemu_name(self, relpath):
        """How QEMU names the file at `relpath` (its path in the node)."""
        return os.path.join(self.path, relative_path(self.name, relpath))

    def read_name(self, relpath):
        """How a node's qemu-img reads the file at `relpath` back for the
        oracle (its path in the node; a mode without one gives a URL)."""
        return os.path.join(self.path, relative_path(self.name, relpath))

    def create_disk(self, lab, node, relpath, size_bytes, base=None,
                    options=()):
        """Create an instance's disk at `relpath` inside `node`, as
        nova-compute does: a qcow2 overlay on `base` ((its StorageMode,
        its relpath)), or an empty qcow2 disk."""
        argv = ['qemu-img', 'create', '-q', '-f', self.disk_format]
        if base:
            base_mode, base_rel = base
            argv += ['-F', 'raw', '-b', base_mode.qemu_name(base_rel)]
        node.run(argv + list(options) + [self.qemu_name(relpath),
                                         str(size_bytes)])

    def write_image(self, lab, node, relpath, write):
        """Put an image at `relpath` where `node` sees it: write(path)
        writes it to a host file (nova's image cache fills _base so)."""
        path = lab.storage.host_path(node, self.name, relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write(path)

    def remove(self, lab, node, relpath):
        """Remove the file or folder at `relpath` as `node` sees it."""
        node.run(['rm', '-rf', os.path.join(
            self.path, relative_path(self.name, relpath))], check=False)

    def disk_source(self, path):
        """(libvirt disk type, <source> element) of a disk at `path`."""
        return 'file', '<source file=%s/>' % saxutils.quoteattr(path)

    # -- mounts and daemons -------------------------------------------------

    def node_binds(self, lab, node):
        """Bind mounts (host folder, in-node path) this mode adds to a
        node's mount namespace, after its /srv."""
        return []

    def server_binds(self, lab, sandbox):
        """Bind mounts this mode adds to the storage sandbox."""
        return []

    def host_dirs(self):
        """Host folders that must exist for the binds above."""
        return ()

    def up(self, lab, say):
        """Start (or repair) the mode's daemons and mounts."""

    def down(self, lab, say, problems):
        """Unmount and stop; append what cannot be undone to problems."""

    def daemon_keys(self, lab):
        """Supervisor keys of the daemons that end with down()."""
        return []

    def node_status(self, lab, node, mounts):
        """The file system type this node sees the mode on, or None when
        it is not usable."""
        return node.mount_type(self.path, mounts)

    def status(self, lab):
        """Its server's status (a dict), or None when it has none."""
        return None

    def status_ok(self, status):
        return True

    # -- what a migration does to a disk on it ------------------------------

    def expect(self, value):
        """The expected outcome of migrating a running guest whose disk is
        on this mode with flags `value`, once libvirt has accepted the
        flag combination."""
        raise NotImplementedError


class FuseMounts(object):
    """One FUSE daemon per node, mounted at the mode's path."""

    def node_fuse_up(self, lab, node, key, argv, log, say):
        target = self.path
        current = node.mount_type(target)
        if current and current.startswith('fuse') and lab.procs.pid(key):
            return
        while current and current.startswith('fuse'):
            rt.umount(target, run=node.run)  # a dead daemon's mount
            current = node.mount_type(target)
        say('%s: %s at %s' % (node.name, self.name, target))
        node.spawn(key, argv, log)
        wait_mount(lab, '%s on %s' % (self.name, node.name),
                   lambda: node.mount_type(target), key, log)

    def node_fuse_down(self, lab, problems):
        for node in lab.nodes:
            if not node.namespaces_exist():
                continue
            try:
                mounts = node.mounts()
            except rt.LabError:
                continue
            while (node.mount_type(self.path, mounts) or '').startswith(
                    'fuse'):
                if not rt.umount(self.path, run=node.run):
                    problems.append('cannot unmount %s in %s' % (
                        self.path, node.name))
                    break
                mounts = node.mounts()

    def fuse_status(self, lab, node, mounts, prefix):
        fstype = node.mount_type(self.path, mounts)
        if (fstype or '').startswith('fuse') and lab.procs.pid(
                prefix + node.name):
            return fstype
        return None


def wait_mount(lab, what, mount_type, key, log):
    """Wait until mount_type() names a FUSE mount, while `key` lives."""
    def alive():
        if not lab.procs.pid(key):
            raise rt.LabError('%s did not mount: %s' % (
                what, rt.one_line(rt.tail(log, 12), 600)))
    rt.wait_for(what, lambda: (mount_type() or '').startswith('fuse'), 60,
                alive, interval=0.2)
