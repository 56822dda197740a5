"""The lab's four storage modes, each at the same path inside both nodes.

``local``
    A folder per node, bound at /srv/lab/local.  What a node writes there
    the other does not see; libvirt does not consider it shared, so a live
    migration must copy the disks (VIR_MIGRATE_NON_SHARED_*).

``shared``
    One GlusterFS volume (one brick), mounted by a separate FUSE client in
    each node (and a third on the host, for host-side access).  libvirt
    recognises ``fuse.glusterfs`` as shared storage, so a plain live
    migration passes its safety check, and the brick's lock translator
    carries QEMU's image locks from one client to the other, as NFS with
    locking does.  glusterd runs in its own sandbox (network namespace
    ``lab-gl``, 10.254.0.253) with all its state, logs and sockets under the
    state folder.  The client-side caches that NFS does not have
    (io-cache, read-ahead, quick-read, open-behind) are off and O_DIRECT is
    honoured end to end, so what one node wrote is what the other reads.

``shared-nolock``
    One host folder seen by each node through its own ``bindfs`` FUSE
    mount.  Both nodes see the same bytes, but each FUSE mount keeps its
    locks to itself, so neither QEMU sees the other's image lock (as NFSv3
    with ``nolock``, or QEMU before 2.10), and libvirt does not consider it
    shared.  This is the mode where copying a disk over itself can happen.

``nfs``
    The seed's NFS for real: NFSv3 served by ``nfs-ganesha`` (VFS backend,
    with ``rpcbind``) in the storage sandbox, and QEMU's own NFS client
    (libnfs, from ``qemu-block-extra``) on the nodes: the disk is a libvirt
    network disk, ``nfs://10.254.0.253/srv/lab/nfs/...``.  libnfs speaks
    NFSv3 and takes no locks.  The export's folder is also bound at the
    same path in each node, as nova's instances path on an NFS mount is on
    every host: libvirt checks that path on the destination, and QEMU never
    uses it (its I/O goes over NFS).
"""

import contextlib
import os
from xml.etree import ElementTree

from tempest.lib.common.utils import test_utils

from migration_tempest_plugin import errors
from migration_tempest_plugin import flags
from migration_tempest_plugin import runtime as rt

MOUNT_BASE = '/srv'
STORAGE_ROOT = '/srv/lab'

GLUSTER_ADDRESS = '10.254.0.253'
GLUSTER_VOLUME = 'labvol'
GLUSTERD_PORT = 24007
GLUSTER_BASE_PORT = 49152
GLUSTER_MAX_PORT = 49171
GLUSTER_HOST_KEY = 'glusterfs-host'

# Closest to NFS: no client-side data caches, O_DIRECT reaches the brick,
# and a dead peer is noticed quickly.
GLUSTER_VOLUME_OPTIONS = (
    ('performance.quick-read', 'off'),
    ('performance.read-ahead', 'off'),
    ('performance.io-cache', 'off'),
    ('performance.open-behind', 'off'),
    ('performance.strict-o-direct', 'on'),
    ('network.remote-dio', 'disable'),
    ('network.ping-timeout', '10'),
    ('nfs.disable', 'on'),
)

# Inside the storage sandbox: (folder under <state>/gluster, target).
GLUSTER_BINDS = (
    ('run', '/run'),
    ('lib', '/var/lib/glusterd'),
    ('etc', '/etc/glusterfs'),
    ('log', '/var/log/glusterfs'),
    ('srv', MOUNT_BASE),
)
# The modes served by the storage sandbox.
SERVED_MODES = ('shared', 'nfs')

NFS_ADDRESS = GLUSTER_ADDRESS   # ganesha runs in the same storage sandbox
NFS_PORT = 2049
MOUNTD_PORT = 20048
RPCBIND_KEY = 'rpcbind'
GANESHA_KEY = 'ganesha'


class StorageError(errors.Error, ValueError):
    """Raised for a bad storage mode or path (a LabError is raised for a
    failing daemon)."""


def check_mode(mode):
    if mode not in flags.STORAGE_MODES:
        raise StorageError('unknown storage mode %r (known: %s)' % (
            mode, ', '.join(flags.STORAGE_MODES)))
    return mode


def storage_path(mode):
    """The path of a storage mode inside both nodes."""
    return '%s/%s' % (STORAGE_ROOT, check_mode(mode))


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


# -- host-side folders ----------------------------------------------------

def local_dir(lab, node):
    return os.path.join(lab.state_dir, 'storage', 'local', node.name)


def nolock_dir(lab):
    return os.path.join(lab.state_dir, 'storage', 'shared-nolock')


def nfs_dir(lab):
    return os.path.join(lab.state_dir, 'storage', 'nfs')


def ganesha_dir(lab):
    return os.path.join(lab.state_dir, 'gluster', 'ganesha')


def nfs_url(relpath):
    """QEMU's URL of a file of the ``nfs`` mode (NFSv3 mounts the export's
    real path)."""
    return 'nfs://%s%s' % (NFS_ADDRESS, os.path.join(
        storage_path('nfs'), relative_path('nfs', relpath)))


def gluster_host_mount(lab):
    return os.path.join(lab.state_dir, 'mnt', 'shared')


def gluster_brick(lab):
    return os.path.join(lab.state_dir, 'gluster', 'brick')


def host_path(lab, node, mode, relpath=''):
    check_mode(mode)
    if mode not in lab.modes:
        raise StorageError('storage mode %s is not part of this lab (%s)' % (
            mode, ', '.join(lab.modes)))
    rel = relative_path(mode, relpath)
    if mode == 'local':
        base = local_dir(lab, node)
    elif mode == 'shared-nolock':
        base = nolock_dir(lab)
    elif mode == 'nfs':
        base = nfs_dir(lab)
    else:
        base = gluster_host_mount(lab)
        if _host_mount_type(base) != 'fuse.glusterfs':
            raise StorageError('the host GlusterFS client is not mounted at '
                               '%s: is the lab up?' % base)
    return os.path.join(base, rel) if rel else base


def _host_mount_type(target):
    m = rt.top_mount(rt.host_mounts(), target)
    return m['fstype'] if m else None


def node_mount_point(node, mode):
    """Host side of the mount point folder inside the node's /srv."""
    return os.path.join(node.dir, 'srv',
                        os.path.relpath(storage_path(mode), MOUNT_BASE))


def node_binds(lab, node):
    """Bind mounts of a node's sandbox for storage: its own /srv (holding
    the mount points of every mode) and its local folder."""
    for mode in flags.STORAGE_MODES:
        os.makedirs(node_mount_point(node, mode), exist_ok=True)
    binds = [(os.path.join(node.dir, 'srv'), MOUNT_BASE)]
    if 'local' in lab.modes:
        binds.append((local_dir(lab, node), storage_path('local')))
    if 'nfs' in lab.modes:
        binds.append((nfs_dir(lab), storage_path('nfs')))
    return binds


def gluster_binds(lab, sandbox):
    """The storage sandbox's binds: glusterd's folders, a private /run
    (rpcbind's and ganesha's sockets and pid files too) and the NFS
    export at its in-node path."""
    for sub, _dst in GLUSTER_BINDS:
        os.makedirs(os.path.join(sandbox.dir, sub), exist_ok=True)
    for sub in ('run/gluster', 'run/ganesha', 'ganesha/recovery'):
        os.makedirs(os.path.join(sandbox.dir, sub), exist_ok=True)
    with open(os.path.join(sandbox.dir, 'etc', 'glusterd.vol'), 'w') as f:
        f.write(render_glusterd_vol())
    binds = [(os.path.join(sandbox.dir, sub), dst)
             for sub, dst in GLUSTER_BINDS]
    if 'nfs' in lab.modes:
        export = os.path.join(sandbox.dir, 'srv',
                              os.path.relpath(storage_path('nfs'),
                                              MOUNT_BASE))
        os.makedirs(export, exist_ok=True)
        binds.append((nfs_dir(lab), storage_path('nfs')))
    return binds


def ganesha_conf(lab):
    return os.path.join(ganesha_dir(lab), 'ganesha.conf')


def host_dirs_needed(modes):
    """Folders that must exist on the host for a bind mount over them."""
    if not any(m in modes for m in SERVED_MODES):
        return []
    return [dst for _s, dst in GLUSTER_BINDS]


# -- pure renderers -------------------------------------------------------

def render_glusterd_vol(port=GLUSTERD_PORT, base_port=GLUSTER_BASE_PORT,
                        max_port=GLUSTER_MAX_PORT):
    """glusterd's own volfile (inside the gluster sandbox)."""
    return '\n'.join([
        'volume management',
        '    type mgmt/glusterd',
        '    option working-directory /var/lib/glusterd',
        '    option transport-type socket',
        '    option transport.address-family inet',
        '    option transport.socket.keepalive-time 10',
        '    option transport.socket.keepalive-interval 2',
        '    option transport.socket.read-fail-log off',
        '    option transport.socket.listen-port %d' % port,
        '    option ping-timeout 0',
        '    option event-threads 1',
        '    option base-port %d' % base_port,
        '    option max-port %d' % max_port,
        'end-volume',
    ]) + '\n'


def render_ganesha_conf(address, export, recovery_root):
    """NFSv3 only, over TCP, on the storage sandbox's address; no NLM (no
    locks: the seed's NFS), root not squashed (the lab's QEMU runs as
    root).  ganesha keeps NFSv4 recovery state even so: under the state
    folder, not /var/lib/nfs."""
    return """NFS_CORE_PARAM {
    Protocols = 3;
    Bind_addr = %(address)s;
    NFS_Port = %(nfs_port)d;
    MNT_Port = %(mnt_port)d;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    mount_path_pseudo = false;
}
NFSv4 {
    Graceless = true;
    RecoveryBackend = fs;
    RecoveryRoot = %(recovery)s;
}
EXPORT {
    Export_Id = 1;
    Path = %(export)s;
    Pseudo = /export;
    Protocols = 3;
    Transports = TCP;
    Access_Type = RW;
    Squash = No_Root_Squash;
    SecType = sys;
    Disable_ACL = true;
    FSAL { Name = VFS; }
}
""" % {'address': address, 'nfs_port': NFS_PORT, 'mnt_port': MOUNTD_PORT,
       'recovery': recovery_root, 'export': export}


def gluster_cli(*args):
    return ['gluster', '--mode=script',
            '--log-file=/var/log/glusterfs/cli.log'] + list(args)


def glusterfs_client_argv(mountpoint, log_file, server=GLUSTER_ADDRESS,
                          volume=GLUSTER_VOLUME):
    """A FUSE client in the foreground; no attribute or entry caching in
    the kernel, so both nodes see sizes and names at once (as NFS does on
    open)."""
    return ['glusterfs', '--no-daemon', '--process-name=fuse',
            '--volfile-server=%s' % server, '--volfile-id=/%s' % volume,
            '--attribute-timeout=0', '--entry-timeout=0',
            '--negative-timeout=0', '--log-file=%s' % log_file, mountpoint]


def bindfs_argv(source, mountpoint):
    """bindfs in the foreground; locks stay local to this mount (no
    --enable-lock-forwarding), which is the point of the mode."""
    return ['bindfs', '-f', '-o', 'fsname=lab-nolock', source, mountpoint]


def parse_volume_status_xml(text):
    """{brick: (online, pid, port)} from `gluster volume status --xml`."""
    out = {}
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return out  # glusterd not ready: an error message, not XML
    for node in root.iter('node'):
        def field(name, node=node):
            return (node.findtext(name) or '').strip()
        path = field('path')
        if not path.startswith('/'):
            continue  # self-heal daemon and the like
        pid = field('pid')
        port = field('port')
        out['%s:%s' % (field('hostname'), path)] = (
            field('status') == '1',
            int(pid) if pid.isdigit() else None,
            int(port) if port.isdigit() else None)
    return out


# -- runtime --------------------------------------------------------------

class Storage:
    """Brings the storage modes of a lab up and down."""

    def __init__(self, lab):
        self.lab = lab

    # gluster -----------------------------------------------------------------

    def _gl(self, *args, check=True, timeout=120):
        return self.lab.gluster.run(gluster_cli(*args), check=check,
                                    timeout=timeout)

    def _glusterd_log(self):
        return os.path.join(self.lab.gluster.dir, 'log', 'glusterd.log')

    def _gluster_up(self, say):
        lab, gl = self.lab, self.lab.gluster
        if not lab.procs.pid('glusterd'):
            say('glusterd at %s' % gl.address)
            gl.spawn('glusterd', ['glusterd', '--no-daemon',
                                  '--log-file=/var/log/glusterfs/glusterd.log',
                                  '--pid-file=/run/glusterd.pid'],
                     os.path.join(lab.log_dir, 'glusterd.out'))

        def alive():
            if not lab.procs.pid('glusterd'):
                raise rt.LabError('glusterd did not start: %s' % (
                    rt.one_line(rt.tail(self._glusterd_log(), 12), 600)))

        rt.wait_for('glusterd to answer',
                    lambda: self._gl('volume', 'list', check=False,
                                     timeout=30).returncode == 0,
                    60, alive, interval=0.3)
        vols = self._gl('volume', 'list').stdout.split()
        brick = '%s:%s' % (gl.address, gluster_brick(lab))
        if GLUSTER_VOLUME not in vols:
            say('gluster volume %s on %s' % (GLUSTER_VOLUME, brick))
            os.makedirs(gluster_brick(lab), exist_ok=True)
            self._gl('volume', 'create', GLUSTER_VOLUME, 'transport', 'tcp',
                     brick, 'force')
            for key, value in GLUSTER_VOLUME_OPTIONS:
                self._gl('volume', 'set', GLUSTER_VOLUME, key, value)
        self._gl('volume', 'start', GLUSTER_VOLUME, 'force')

        def brick_online():
            res = self._gl('volume', 'status', GLUSTER_VOLUME, '--xml',
                           check=False, timeout=30)
            status = parse_volume_status_xml(res.stdout)
            return bool(status) and all(s[0] for s in status.values())

        rt.wait_for('the gluster brick to come online', brick_online,
                    60, alive, interval=0.5)

    # nfs ---------------------------------------------------------------------

    def _rpc_answers(self, program):
        """rpcinfo's null call to an RPC program (v3, TCP) on the server."""
        return self.lab.gluster.run(
            ['rpcinfo', '-T', 'tcp', NFS_ADDRESS, program, '3'],
            check=False, timeout=15).returncode == 0

    def _nfs_up(self, say):
        lab, gl = self.lab, self.lab.gluster
        os.makedirs(nfs_dir(lab), exist_ok=True)
        if not lab.procs.pid(RPCBIND_KEY):
            say('rpcbind at %s' % gl.address)
            # ganesha registers with the portmapper, and QEMU's libnfs finds
            # mountd and nfsd only through it.
            gl.spawn(RPCBIND_KEY, ['rpcbind', '-f', '-w'],
                     os.path.join(lab.log_dir, 'rpcbind.out'))
            rt.wait_for('rpcbind to answer', lambda: gl.run(
                ['rpcinfo', '-p', NFS_ADDRESS], check=False,
                timeout=15).returncode == 0, 30, interval=0.2)
        if lab.procs.pid(GANESHA_KEY) and self._rpc_answers('nfs'):
            return
        say('nfs-ganesha (NFSv3) at %s, export %s' % (
            gl.address, storage_path('nfs')))
        recovery = os.path.join(ganesha_dir(lab), 'recovery')
        os.makedirs(recovery, exist_ok=True)
        rt.write_file(ganesha_conf(lab), render_ganesha_conf(
            NFS_ADDRESS, storage_path('nfs'), recovery))
        log = os.path.join(ganesha_dir(lab), 'ganesha.log')
        gl.spawn(GANESHA_KEY, ['ganesha.nfsd', '-F', '-L', log,
                               '-f', ganesha_conf(lab),
                               '-p', '/run/ganesha/ganesha.pid'],
                 os.path.join(lab.log_dir, 'ganesha.out'))

        def alive():
            if not lab.procs.pid(GANESHA_KEY):
                raise rt.LabError('nfs-ganesha did not start: %s' % (
                    rt.one_line(rt.tail(log, 12), 600)))
        rt.wait_for('nfs-ganesha to answer (nfs and mountd)',
                    lambda: self._rpc_answers('nfs')
                    and self._rpc_answers('mountd'), 60, alive,
                    interval=0.3)

    def nfs_status(self):
        lab = self.lab
        ganesha = lab.procs.pid(GANESHA_KEY)
        return {'address': NFS_ADDRESS,
                'rpcbind_pid': lab.procs.pid(RPCBIND_KEY),
                'ganesha_pid': ganesha,
                'answers': bool(ganesha and lab.gluster.ready()
                                and self._rpc_answers('nfs'))}

    def _wait_mount(self, what, mount_type, key, log):

        def alive():
            if not self.lab.procs.pid(key):
                raise rt.LabError('%s did not mount: %s' % (
                    what, rt.one_line(rt.tail(log, 12), 600)))
        rt.wait_for(what, lambda: (mount_type() or '').startswith(
            'fuse'), 60, alive, interval=0.2)

    def _host_client(self, say):
        lab = self.lab
        target = gluster_host_mount(lab)
        if _host_mount_type(target) == 'fuse.glusterfs' and \
                lab.procs.pid(GLUSTER_HOST_KEY):
            return
        while _host_mount_type(target):
            rt.umount(target)  # a dead client's mount
        os.makedirs(target, exist_ok=True)
        say('host GlusterFS client at %s' % target)
        log = os.path.join(lab.log_dir, 'glusterfs-host.log')
        lab.spawn_host(GLUSTER_HOST_KEY, glusterfs_client_argv(target, log),
                       log)
        self._wait_mount('the host GlusterFS client',
                         lambda: _host_mount_type(target), GLUSTER_HOST_KEY,
                         log)

    def _node_fuse(self, node, mode, key, argv, log, say):
        target = storage_path(mode)
        current = node.mount_type(target)
        if current and current.startswith('fuse') and \
                self.lab.procs.pid(key):
            return
        while current and current.startswith('fuse'):
            rt.umount(target, run=node.run)  # a dead daemon's mount
            current = node.mount_type(target)
        say('%s: %s at %s' % (node.name, mode, target))
        node.spawn(key, argv, log)
        self._wait_mount('%s on %s' % (mode, node.name),
                         lambda: node.mount_type(target), key, log)

    def up(self, say):
        lab = self.lab
        for node in lab.nodes:
            os.makedirs(local_dir(lab, node), exist_ok=True)
        os.makedirs(nolock_dir(lab), exist_ok=True)
        if 'shared' in lab.modes:
            self._gluster_up(say)
            self._host_client(say)
            for node in lab.nodes:
                log = os.path.join(lab.log_dir,
                                   'glusterfs-%s.log' % node.name)
                self._node_fuse(node, 'shared', 'glusterfs-' + node.name,
                                glusterfs_client_argv(storage_path('shared'),
                                                      log), log, say)
        if 'nfs' in lab.modes:
            self._nfs_up(say)
        if 'shared-nolock' in lab.modes:
            for node in lab.nodes:
                log = os.path.join(lab.log_dir, 'bindfs-%s.log' % node.name)
                self._node_fuse(node, 'shared-nolock', 'bindfs-' + node.name,
                                bindfs_argv(nolock_dir(lab),
                                            storage_path('shared-nolock')),
                                log, say)

    def down(self, say, problems):
        """Unmount the FUSE mounts (the daemons then exit; the lab ends
        whatever is left by PID)."""
        lab = self.lab
        for node in lab.nodes:
            if not node.namespaces_exist():
                continue
            with contextlib.suppress(rt.LabError):
                mounts = node.mounts()
                for mode in ('shared', 'shared-nolock'):
                    target = storage_path(mode)
                    while (node.mount_type(target, mounts) or '').startswith(
                            'fuse'):
                        if not rt.umount(target, run=node.run):
                            problems.append('cannot unmount %s in %s' % (
                                target, node.name))
                            break
                        mounts = node.mounts()
        target = gluster_host_mount(lab)
        while _host_mount_type(target):
            if not rt.umount(target):
                problems.append('cannot unmount %s' % target)
                break
        entry = lab.procs.entry(GLUSTER_HOST_KEY)
        if entry:
            if rt.terminate([entry]):
                problems.append('host GlusterFS client still alive')
            lab.procs.forget(GLUSTER_HOST_KEY)
        # Give the node clients a moment to notice their unmount.
        keys = [k for k in lab.procs.names()
                if k.startswith(('glusterfs-', 'bindfs-'))]
        test_utils.call_until_true(
            lambda: not any(lab.procs.pid(k) for k in keys), 5, 0.1)

    # status ------------------------------------------------------------------

    def node_status(self, node):
        """{mode: file system type of its mount in the node, or None when
        it is not mounted or its FUSE daemon is gone}."""
        mounts = node.mounts()
        out = {}
        daemons = {'shared': 'glusterfs-', 'shared-nolock': 'bindfs-'}
        for mode in self.lab.modes:
            fstype = node.mount_type(storage_path(mode), mounts)
            if mode in daemons and not (
                    (fstype or '').startswith('fuse')
                    and self.lab.procs.pid(daemons[mode] + node.name)):
                fstype = None
            if mode == 'nfs':
                # QEMU reaches the disks over NFS; the bind only serves
                # libvirt's path checks.
                fstype = 'nfs3 (libnfs)' if fstype and self.lab.procs.pid(
                    GANESHA_KEY) else None
            out[mode] = fstype
        return out

    def gluster_status(self):
        lab, gl = self.lab, self.lab.gluster
        glusterd = lab.procs.pid('glusterd')
        bricks = {}
        if glusterd and gl.ready():
            res = self._gl('volume', 'status', GLUSTER_VOLUME, '--xml',
                           check=False, timeout=30)
            bricks = {k: {'online': v[0], 'pid': v[1], 'port': v[2]}
                      for k, v in parse_volume_status_xml(res.stdout).items()}
        return {'address': gl.address, 'netns': gl.netns_exists(),
                'glusterd_pid': glusterd, 'bricks': bricks,
                'host_mount': _host_mount_type(gluster_host_mount(lab))
                if lab.procs.pid(GLUSTER_HOST_KEY) else None}
