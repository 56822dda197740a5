"""``shared``: one GlusterFS volume (one brick), mounted by a separate FUSE
client in each node (and a third on the host, for host-side access).

libvirt recognises ``fuse.glusterfs`` as shared storage, so a plain live
migration passes its safety check, and the brick's lock translator carries
QEMU's image locks from one client to the other, as NFS with locking does.
glusterd runs in the storage sandbox (network namespace ``lab-gl``,
10.254.0.253) with all its state, logs and sockets under the state folder.
The client-side caches that NFS does not have (io-cache, read-ahead,
quick-read, open-behind) are off and O_DIRECT is honoured end to end, so
what one node wrote is what the other reads.
"""

import os
from xml.etree import ElementTree

from migration_tempest_plugin import flags
from migration_tempest_plugin.lab.storage import base
from migration_tempest_plugin import runtime as rt

Outcome = flags.Outcome

GLUSTER_ADDRESS = base.SERVER_ADDRESS
GLUSTER_VOLUME = 'labvol'
GLUSTERD_PORT = 24007
GLUSTER_BASE_PORT = 49152
GLUSTER_MAX_PORT = 49171
GLUSTER_HOST_KEY = 'glusterfs-host'

# Closest to NFS: no client-side data caches, O_DIRECT reaches the brick,
# and a dead peer is noticed quickly.  No metadata cache either (md-cache,
# 'stat-prefetch'): with it, a lookup on one node could answer from the
# second before the other node moved the folder away.  nova's cold
# migration and resize then found an instance's kernel file that was no
# longer there (README, "Known findings", shared-storage-kernel-race).
GLUSTER_VOLUME_OPTIONS = (
    ('performance.quick-read', 'off'),
    ('performance.read-ahead', 'off'),
    ('performance.io-cache', 'off'),
    ('performance.open-behind', 'off'),
    ('performance.stat-prefetch', 'off'),
    ('performance.strict-o-direct', 'on'),
    ('network.remote-dio', 'disable'),
    ('network.ping-timeout', '10'),
    ('nfs.disable', 'on'),
)

# glusterd's folders in the storage sandbox: (folder under <state>/gluster,
# target); its /run and /srv are the sandbox's own (lab.storage).
GLUSTER_BINDS = (
    ('lib', '/var/lib/glusterd'),
    ('etc', '/etc/glusterfs'),
    ('log', '/var/log/glusterfs'),
)


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


def parse_volume_options(text):
    """{option: value} from `gluster volume get VOLUME all`."""
    out = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and '.' in fields[0]:
            out[fields[0]] = fields[1]
    return out


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


def host_mount(lab):
    return os.path.join(lab.state_dir, 'mnt', 'shared')


def brick(lab):
    return os.path.join(lab.state_dir, 'gluster', 'brick')


class Shared(base.FuseMounts, base.StorageMode):
    name = 'shared'
    packages = {'glusterd': 'glusterfs-server', 'gluster': 'glusterfs-server',
                'glusterfs': 'glusterfs-client'}
    served = True
    fuse = True
    status_key = 'gluster'

    def host_base(self, lab, node):
        # The host's own client, coherent with the nodes' clients.
        base_dir = host_mount(lab)
        if base.host_mount_type(base_dir) != 'fuse.glusterfs':
            raise base.StorageError('the host GlusterFS client is not '
                                    'mounted at %s: is the lab up?'
                                    % base_dir)
        return base_dir

    def server_binds(self, lab, sandbox):
        for sub, _dst in GLUSTER_BINDS:
            os.makedirs(os.path.join(sandbox.dir, sub), exist_ok=True)
        os.makedirs(os.path.join(sandbox.dir, 'run', 'gluster'),
                    exist_ok=True)
        with open(os.path.join(sandbox.dir, 'etc', 'glusterd.vol'),
                  'w') as f:
            f.write(render_glusterd_vol())
        return [(os.path.join(sandbox.dir, sub), dst)
                for sub, dst in GLUSTER_BINDS]

    def host_dirs(self):
        return tuple(dst for _s, dst in GLUSTER_BINDS)

    # -- up -----------------------------------------------------------------

    def _gl(self, lab, *args, check=True, timeout=120):
        return lab.gluster.run(gluster_cli(*args), check=check,
                               timeout=timeout)

    def _glusterd_up(self, lab, say):
        gl = lab.gluster
        log = os.path.join(gl.dir, 'log', 'glusterd.log')
        if not lab.procs.pid('glusterd'):
            say('glusterd at %s' % gl.address)
            gl.spawn('glusterd', ['glusterd', '--no-daemon',
                                  '--log-file=/var/log/glusterfs/glusterd.log',
                                  '--pid-file=/run/glusterd.pid'],
                     os.path.join(lab.log_dir, 'glusterd.out'))

        def alive():
            if not lab.procs.pid('glusterd'):
                raise rt.LabError('glusterd did not start: %s' % (
                    rt.one_line(rt.tail(log, 12), 600)))

        rt.wait_for('glusterd to answer',
                    lambda: self._gl(lab, 'volume', 'list', check=False,
                                     timeout=30).returncode == 0,
                    60, alive, interval=0.3)
        vols = self._gl(lab, 'volume', 'list').stdout.split()
        where = '%s:%s' % (gl.address, brick(lab))
        if GLUSTER_VOLUME not in vols:
            say('gluster volume %s on %s' % (GLUSTER_VOLUME, where))
            os.makedirs(brick(lab), exist_ok=True)
            self._gl(lab, 'volume', 'create', GLUSTER_VOLUME, 'transport',
                     'tcp', where, 'force')
        # Also on a volume made by an older lab, whose options may differ.
        # (An answer that does not parse sets them all again.)
        current = parse_volume_options(self._gl(
            lab, 'volume', 'get', GLUSTER_VOLUME, 'all', check=False).stdout)
        for key, value in GLUSTER_VOLUME_OPTIONS:
            if current.get(key) != value:
                self._gl(lab, 'volume', 'set', GLUSTER_VOLUME, key, value)
        self._gl(lab, 'volume', 'start', GLUSTER_VOLUME, 'force')
        rt.wait_for('the gluster brick to come online',
                    lambda: self._bricks_online(lab), 60, alive,
                    interval=0.5)

    def _bricks(self, lab):
        res = self._gl(lab, 'volume', 'status', GLUSTER_VOLUME, '--xml',
                       check=False, timeout=30)
        return parse_volume_status_xml(res.stdout)

    def _bricks_online(self, lab):
        status = self._bricks(lab)
        return bool(status) and all(s[0] for s in status.values())

    def _host_client(self, lab, say):
        target = host_mount(lab)
        if base.host_mount_type(target) == 'fuse.glusterfs' and \
                lab.procs.pid(GLUSTER_HOST_KEY):
            return
        while base.host_mount_type(target):
            rt.umount(target)  # a dead client's mount
        os.makedirs(target, exist_ok=True)
        say('host GlusterFS client at %s' % target)
        log = os.path.join(lab.log_dir, 'glusterfs-host.log')
        lab.spawn_host(GLUSTER_HOST_KEY, glusterfs_client_argv(target, log),
                       log)
        base.wait_mount(lab, 'the host GlusterFS client',
                        lambda: base.host_mount_type(target),
                        GLUSTER_HOST_KEY, log)

    def up(self, lab, say):
        self._glusterd_up(lab, say)
        self._host_client(lab, say)
        for node in lab.nodes:
            log = os.path.join(lab.log_dir, 'glusterfs-%s.log' % node.name)
            self.node_fuse_up(lab, node, 'glusterfs-' + node.name,
                              glusterfs_client_argv(self.path, log), log,
                              say)

    # -- down and status ----------------------------------------------------

    def down(self, lab, say, problems):
        self.node_fuse_down(lab, problems)
        target = host_mount(lab)
        while base.host_mount_type(target):
            if not rt.umount(target):
                problems.append('cannot unmount %s' % target)
                break
        entry = lab.procs.entry(GLUSTER_HOST_KEY)
        if entry:
            if rt.terminate([entry]):
                problems.append('host GlusterFS client still alive')
            lab.procs.forget(GLUSTER_HOST_KEY)

    def daemon_keys(self, lab):
        return ['glusterfs-' + node.name for node in lab.nodes]

    def node_status(self, lab, node, mounts):
        return self.fuse_status(lab, node, mounts, 'glusterfs-')

    def status(self, lab):
        gl = lab.gluster
        glusterd = lab.procs.pid('glusterd')
        bricks = {}
        if glusterd and gl.ready():
            bricks = {k: {'online': v[0], 'pid': v[1], 'port': v[2]}
                      for k, v in self._bricks(lab).items()}
        return {'address': gl.address, 'netns': gl.netns_exists(),
                'glusterd_pid': glusterd, 'bricks': bricks,
                'host_mount': base.host_mount_type(host_mount(lab))
                if lab.procs.pid(GLUSTER_HOST_KEY) else None}

    def status_ok(self, status):
        return status['glusterd_pid'] is not None and \
            bool(status['host_mount'])

    # -- rules --------------------------------------------------------------

    def expect(self, value):
        if base.copies(value):
            # QEMU image locking: the destination cannot open the same file
            # for writing while the source holds it (qemu-iotests 153).
            return base.expectation(
                Outcome.REFUSED_BY_LIBVIRT, 'disk copy onto the same file is '
                "stopped by QEMU's image lock", flags.LOCKED_COPY_MESSAGE)
        return base.expectation(
            Outcome.INTACT, 'shared storage that libvirt recognises; nothing '
            'is copied')


MODE = Shared
