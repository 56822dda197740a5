"""Two libvirt nodes on one machine: network, namespaces and daemons.

The lab is made of three "sandboxes", each a network namespace plus a
private mount namespace:

* ``lab-n1`` (10.254.0.1) and ``lab-n2`` (10.254.0.2): one libvirtd each,
  with its own /run, /etc/libvirt, /var/lib/libvirt, /var/log/libvirt,
  /var/cache/libvirt and /srv (bind mounts of per-node folders), so that the
  two daemons share no state, as two real hosts would not;
* ``lab-gl`` (10.254.0.253): glusterd and its brick, for the ``shared``
  storage mode (see :mod:`storage`).

The three veth pairs hang on the bridge ``labbr0`` (10.254.0.254/24), rt.which
is how the host reaches the nodes (``qemu+tcp://10.254.0.1/system``).  Each
libvirtd listens without authentication, so it listens only on its node's
own address, inside its own network namespace.

Mount namespaces are kept alive by bind mounts of their nsfs files under
``<state>/ns`` (``unshare --mount=FILE``), not by holder processes; every
daemon runs in the foreground as a child of ``nsenter``, so its PID is
known and written under ``<state>/pids``.  Everything the lab writes lives
under the state folder; the only things outside it are the kernel objects
(bridge, veths, network namespaces and their ``/run/netns`` entries), and
``down()`` removes those.

Host paths seen from inside a node: the node sees the host's file system
except for the folders bound over (/run, /etc/libvirt, /var/lib/libvirt,
/var/log/libvirt, /var/cache/libvirt, /srv, and a fresh /sys), so a guest
kernel, a console log or a work folder under the state folder has the same
path on the host and in both nodes.
"""

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import time
import uuid

from migration_tempest_plugin import flags
from migration_tempest_plugin.lab import storage as storagelib
from migration_tempest_plugin.lab import tls as tlslib
from migration_tempest_plugin import runtime as rt

# Where the lab and the lab cloud keep everything, unless told otherwise.
DEFAULT_STATE_DIR = os.environ.get('MIGRATION_LAB_STATE',
                                   '/var/tmp/migration-lab')
storage_path = storagelib.storage_path

BRIDGE = 'labbr0'
BRIDGE_ADDRESS = '10.254.0.254'
PREFIXLEN = 24
NODE_SPECS = (('n1', '10.254.0.1'), ('n2', '10.254.0.2'))
GLUSTER_SPEC = ('gl', storagelib.GLUSTER_ADDRESS)
LIBVIRTD_PORT = 16509
NETNS_DIR = '/run/netns'
# Inside a node: where QEMU finds its TLS certificates (a sub-folder of
# the node's own /etc/libvirt, so nothing is needed at /etc/pki on the host).
TLS_DIR_IN_NODE = '/etc/libvirt/pki/qemu'
# The libvirtd debug log (inside a node); the matrix audits flags from it.
LIBVIRTD_LOG_IN_NODE = '/var/log/libvirt/libvirtd.log'
LIBVIRTD_LOG_FILTERS = ('1:libvirt 1:qemu.qemu_migration 1:qemu.qemu_monitor '
                        '3:*')

# Per node: (folder under <state>/nodes/<name>, mount point in the node).
NODE_BINDS = (
    ('run', '/run'),
    ('etc-libvirt', '/etc/libvirt'),
    ('lib-libvirt', '/var/lib/libvirt'),
    ('log-libvirt', '/var/log/libvirt'),
    ('cache-libvirt', '/var/cache/libvirt'),
)

# Binary -> Debian package, for the preflight message.
BINARIES = {
    'ip': 'iproute2',
    'unshare': 'util-linux',
    'nsenter': 'util-linux',
    'mount': 'mount',
    'umount': 'mount',
    'libvirtd': 'libvirt-daemon-system',
    'virsh': 'libvirt-clients',
    'qemu-system-x86_64': 'qemu-system-x86',
    'qemu-img': 'qemu-utils',
    'openssl': 'openssl',
}
MODE_BINARIES = {
    'shared': {'glusterd': 'glusterfs-server', 'gluster': 'glusterfs-server',
               'glusterfs': 'glusterfs-client'},
    'shared-nolock': {'bindfs': 'bindfs'},
}

_HOST_UUID_NS = uuid.UUID('6f1c7d52-3e0b-4d55-9a43-0c7f5b2b1e10')


def _quote(value):
    value = str(value)
    if '"' in value or '\n' in value:
        raise ValueError('unsafe value for a libvirt config file: %r' % value)
    return '"%s"' % value


def host_uuid(node_name):
    """A stable host UUID per node name; the two must differ, or the
    destination refuses with "Attempt to migrate guest to the same host"."""
    return str(uuid.uuid5(_HOST_UUID_NS, 'migration-lab/' + node_name))


def render_libvirtd_conf(address, uuid_, debug=True, port=LIBVIRTD_PORT):
    """libvirtd.conf of one node: plain TCP without auth on the node's own
    address only; TLS for the daemon itself is off (QEMU's native TLS for
    migration is configured in qemu.conf)."""
    lines = [
        '# Written by migration_tempest_plugin.lab.nodes on every lab up.',
        'listen_tls = 0',
        'listen_tcp = 1',
        'listen_addr = %s' % _quote(address),
        'tcp_port = %s' % _quote(port),
        'auth_tcp = "none"',
        'auth_unix_ro = "none"',
        'auth_unix_rw = "none"',
        'unix_sock_group = "root"',
        'unix_sock_ro_perms = "0700"',
        'unix_sock_rw_perms = "0700"',
        'unix_sock_admin_perms = "0700"',
        'host_uuid = %s' % _quote(uuid_),
        'log_outputs = %s' % _quote(
            '%d:file:%s' % (1 if debug else 3, LIBVIRTD_LOG_IN_NODE)),
    ]
    if debug:
        lines.append('log_filters = %s' % _quote(LIBVIRTD_LOG_FILTERS))
    return '\n'.join(lines) + '\n'


def render_qemu_conf(address, tls_dir=TLS_DIR_IN_NODE):
    """qemu.conf of one node: QEMU as root without a security driver,
    cgroups or per-guest namespaces (none of which a lab inside namespaces
    can offer), guest stdio to plain files (no virtlogd), and migration
    traffic (QEMU's own stream and NBD) on the node's own address."""
    lines = [
        '# Written by migration_tempest_plugin.lab.nodes on every lab up.',
        'user = "root"',
        'group = "root"',
        'remember_owner = 0',
        'security_driver = "none"',
        'stdio_handler = "file"',
        'cgroup_controllers = [ ]',
        'namespaces = [ ]',
        'migration_address = %s' % _quote(address),
        'migration_host = %s' % _quote(address),
        'default_tls_x509_cert_dir = %s' % _quote(tls_dir),
        'default_tls_x509_verify = 1',
        'migrate_tls_x509_cert_dir = %s' % _quote(tls_dir),
        'migrate_tls_x509_verify = 1',
    ]
    return '\n'.join(lines) + '\n'


# -- sandboxes ------------------------------------------------------------

class Sandbox:
    """A network namespace plus a private mount namespace."""

    veth_host_prefix = 'vlab-'

    def __init__(self, lab, name, address):
        self.lab = lab
        self.name = name
        self.address = address
        self.netns = 'lab-' + name
        self.netns_file = os.path.join(NETNS_DIR, self.netns)
        self.mntns_file = os.path.join(lab.state_dir, 'ns', name + '.mnt')
        self.ready_file = os.path.join(lab.state_dir, 'ns', name + '.ready')
        self.veth = self.veth_host_prefix + name
        self.dir = os.path.join(lab.state_dir, 'nodes', name)

    def __repr__(self):
        return '<%s %s %s>' % (type(self).__name__, self.name, self.address)

    # Entering ----------------------------------------------------------------

    def argv(self, argv):
        """argv wrapped so that it runs inside this sandbox's namespaces."""
        return ['nsenter', '--net=' + self.netns_file,
                '--mount=' + self.mntns_file, '--'] + [str(a) for a in argv]

    def run(self, argv, check=True, timeout=600, input=None, **kwargs):
        """Run a command inside the sandbox; returns a CompletedProcess with
        text stdout/stderr; raises LabCommandError if check and it fails."""
        if not self.namespaces_exist():
            raise rt.LabError('%s: the lab is not up (no namespaces)'
                              % self.name)
        full = self.argv(argv)
        env = kwargs.pop('env', None)
        run_env = self.lab.env()
        if env:
            run_env.update(env)
        try:
            res = subprocess.run(
                full, capture_output=True, text=True, timeout=timeout,
                input=input, env=run_env, cwd='/',
                stdin=None if input is not None else subprocess.DEVNULL,
                **kwargs)
        except subprocess.TimeoutExpired as exc:
            raise rt.LabError('%s: `%s` timed out after %ss' % (
                self.name, ' '.join(map(str, argv)), timeout)) from exc
        if check and res.returncode:
            raise rt.LabCommandError(argv, res.returncode, res.stdout,
                                     res.stderr, where=self.name)
        return res

    def spawn(self, key, argv, log):
        """Start a long-lived command in the sandbox, in the foreground of
        its own session, and record its PID under `key`."""
        return self.lab.spawn_host(key, self.argv(argv), log)

    def mounts(self):
        res = self.run(['cat', '/proc/self/mountinfo'])
        return rt.parse_mountinfo(res.stdout)

    def mount_type(self, target, mounts=None):
        m = rt.top_mount(self.mounts() if mounts is None else mounts, target)
        return m['fstype'] if m else None

    # State -------------------------------------------------------------------

    def netns_exists(self):
        return os.path.exists(self.netns_file)

    def mntns_mounted(self, mounts=None):
        m = rt.top_mount(rt.host_mounts() if mounts is None else mounts,
                         self.mntns_file)
        return bool(m and m['fstype'] == 'nsfs')

    def namespaces_exist(self):
        return self.netns_exists() and self.mntns_mounted()

    def ready(self):
        """Namespaces exist and were fully set up (the ready marker names
        the current mount namespace)."""
        if not self.namespaces_exist():
            return False
        try:
            with open(self.ready_file) as f:
                return f.read().strip() == str(rt.ns_inode(self.mntns_file))
        except OSError:
            return False

    def pids(self):
        return rt.pids_in_namespaces(
            [rt.ns_inode(self.netns_file)] if self.netns_exists() else [],
            [rt.ns_inode(self.mntns_file)] if self.mntns_mounted() else [])

    # Building ----------------------------------------------------------------

    def binds(self):
        """(host folder, target) bind mounts of this sandbox."""
        return []

    def ensure_network(self):
        if not self.netns_exists():
            rt.host_run(['ip', 'netns', 'add', self.netns])
        if not _link_exists(self.veth):
            rt.host_run(['ip', 'link', 'add', self.veth, 'type', 'veth',
                         'peer', 'name', 'eth0', 'netns', self.netns])
        rt.host_run(['ip', 'link', 'set', self.veth, 'master', BRIDGE, 'up'])
        nsip = ['ip', '-n', self.netns]
        rt.host_run(nsip + ['link', 'set', 'lo', 'up'])
        addrs = rt.host_run(
            nsip + ['-j', 'addr', 'show', 'dev', 'eth0']).stdout
        have = {a.get('local') for link in json.loads(addrs or '[]')
                for a in link.get('addr_info', [])}
        if self.address not in have:
            rt.host_run(nsip + ['addr', 'add', '%s/%d' % (self.address,
                                                          PREFIXLEN),
                                'dev', 'eth0'])
        rt.host_run(nsip + ['link', 'set', 'eth0', 'up'])

    def ensure_namespaces(self):
        """Create and populate the private mount namespace (all or nothing:
        a half-built one is torn down and built again)."""
        if self.ready():
            return
        if self.mntns_mounted():
            self.lab._end_sandbox(self)
        binds = self.binds()
        for src, _dst in binds:
            os.makedirs(src, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.ready_file)
        open(self.mntns_file, 'a').close()
        rt.host_run(['nsenter', '--net=' + self.netns_file, 'unshare',
                     '--mount=' + self.mntns_file, '--propagation', 'private',
                     'true'], where=self.name, env=self.lab.env())
        # Drop the copies of lab mounts made when the namespace was cloned
        # (other namespaces' files, a host FUSE client, /run/netns), so that
        # this namespace holds no reference to them.
        mounts = self.mounts()
        for target in (rt.mounts_under(mounts, self.lab.state_dir)
                       + rt.mounts_under(mounts, NETNS_DIR)):
            self.run(['umount', '-l', target], check=False)
        # A /sys that shows this network namespace, as `ip netns exec` does.
        self.run(['umount', '-l', '/sys'], check=False)
        self.run(['mount', '-t', 'sysfs', 'sysfs-' + self.netns, '/sys'])
        for src, dst in binds:
            self.run(['mount', '--bind', src, dst])
        with open(self.ready_file, 'w') as f:
            f.write(str(rt.ns_inode(self.mntns_file)))


def _link_exists(name):
    return rt.host_run(['ip', 'link', 'show', 'dev', name],
                       check=False).returncode == 0


class Node(Sandbox):
    """One libvirt host of the lab."""

    def __init__(self, lab, name, address):
        super().__init__(lab, name, address)
        self.uri = 'qemu+tcp://%s/system' % address
        self.host_uuid = host_uuid(name)
        self.proc_key = 'libvirtd-' + name

    def binds(self):
        out = [(os.path.join(self.dir, sub), dst) for sub, dst in NODE_BINDS]
        out += storagelib.node_binds(self.lab, self)
        return out

    # Paths -------------------------------------------------------------------

    def storage_path(self, mode):
        return storagelib.storage_path(mode)

    def host_path(self, mode, relpath=''):
        """Host-side path of the file this node sees at
        storage_path(mode)/relpath (`relpath` may also be that full in-node
        path).  local: this node's own folder; shared: the host's GlusterFS
        client mount (coherent with the nodes' clients); shared-nolock: the
        common backing folder of the two bindfs mounts."""
        try:
            return storagelib.host_path(self.lab, self, mode, relpath)
        except storagelib.StorageError as exc:
            raise rt.LabError('%s: %s' % (self.name, exc)) from exc

    def node_dir(self, sub):
        """Host path of one of the node's private folders (see NODE_BINDS),
        e.g. node_dir('log-libvirt')."""
        return os.path.join(self.dir, sub)

    @property
    def libvirtd_log(self):
        """Host path of this node's libvirtd log (debug level unless the lab
        was made with libvirt_debug=False)."""
        return os.path.join(self.dir, 'log-libvirt',
                            os.path.basename(LIBVIRTD_LOG_IN_NODE))

    @property
    def libvirtd_output(self):
        return os.path.join(self.lab.log_dir, 'libvirtd-%s.out' % self.name)

    def qemu_log(self, domain_name):
        return os.path.join(self.dir, 'log-libvirt', 'qemu',
                            domain_name + '.log')

    @property
    def tls_dir(self):
        """Host path of the node's QEMU TLS folder (TLS_DIR_IN_NODE)."""
        return os.path.join(self.dir, 'etc-libvirt', 'pki', 'qemu')

    # libvirtd ----------------------------------------------------------------

    def write_configs(self):
        etc = os.path.join(self.dir, 'etc-libvirt')
        os.makedirs(etc, exist_ok=True)
        for name, text in (
                ('libvirtd.conf', render_libvirtd_conf(
                    self.address, self.host_uuid, self.lab.libvirt_debug)),
                ('qemu.conf', render_qemu_conf(self.address))):
            path = os.path.join(etc, name)
            with open(path + '.tmp', 'w') as f:
                f.write(text)
            os.replace(path + '.tmp', path)
        os.makedirs(os.path.join(self.dir, 'run', 'libvirt'), exist_ok=True)

    def libvirtd_pid(self):
        return self.lab.procs.pid(self.proc_key)

    def start_libvirtd(self):
        if self.libvirtd_pid():
            return None
        return self.spawn(self.proc_key, [
            'libvirtd', '--listen', '--config', '/etc/libvirt/libvirtd.conf',
            '--pid-file', '/run/libvirt/libvirtd.pid'], self.libvirtd_output)

    def libvirtd_answers(self):
        try:
            with socket.create_connection((self.address, LIBVIRTD_PORT),
                                          timeout=1):
                pass
        except OSError:
            return False
        res = self.run(['virsh', '-c', self.uri, 'uri'], check=False,
                       timeout=60)
        return res.returncode == 0

    def wait_libvirtd(self, timeout=120):
        def check():
            if not self.libvirtd_pid():
                raise rt.LabError('libvirtd on %s (%s) is not running: %s' % (
                    self.name, self.address,
                    rt.one_line(rt.tail(self.libvirtd_output, 12), 600)))
        rt.wait_for('libvirtd on %s to answer at %s' % (self.name, self.uri),
                    self.libvirtd_answers, timeout, check, interval=0.3)


class GlusterSandbox(Sandbox):
    """Where glusterd and its brick run (the `shared` storage mode)."""

    def __init__(self, lab, name, address):
        super().__init__(lab, name, address)
        self.dir = os.path.join(lab.state_dir, 'gluster')

    def binds(self):
        return storagelib.gluster_binds(self.lab, self)


class Lab:
    """The two-node lab.  ``up()`` is idempotent and repairs a partial lab;
    ``down()`` removes everything outside the state folder and works on a
    partial lab; ``status()`` says what is there."""

    def __init__(self, state_dir=DEFAULT_STATE_DIR, modes=flags.STORAGE_MODES,
                 libvirt_debug=True):
        for mode in modes:
            storagelib.check_mode(mode)
        self.state_dir = os.path.abspath(state_dir)
        self.modes = tuple(modes)
        self.libvirt_debug = libvirt_debug
        self.log_dir = os.path.join(self.state_dir, 'logs')
        self.procs = rt.Supervisor(os.path.join(self.state_dir, 'pids'),
                                   self.log_dir, env=self.env())
        self.nodes = [Node(self, name, addr) for name, addr in NODE_SPECS]
        self.gluster = GlusterSandbox(self, *GLUSTER_SPEC)
        self.storage = storagelib.Storage(self)
        self._meta_file = os.path.join(self.state_dir, 'lab.json')

    # Small API ---------------------------------------------------------------

    @staticmethod
    def storage_path(mode):
        return storagelib.storage_path(mode)

    def env(self):
        """Environment of every command the lab runs: sbin on PATH, C
        locale, and libmount's utab under the state folder (otherwise
        mount/umount would create /run/mount on the host)."""
        env = rt.command_env()
        env['LIBMOUNT_UTAB'] = os.path.join(self.state_dir, 'libmount',
                                            'utab')
        return env

    def node(self, name):
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    @property
    def sandboxes(self):
        out = list(self.nodes)
        if 'shared' in self.modes:
            out.append(self.gluster)
        return out

    def _all_sandboxes(self):
        return list(self.nodes) + [self.gluster]

    # Preflight ---------------------------------------------------------------

    def missing_binaries(self):
        """{binary: debian package} of what is missing for these modes."""
        wanted = dict(BINARIES)
        for mode in self.modes:
            wanted.update(MODE_BINARIES.get(mode, {}))
        return {b: p for b, p in sorted(wanted.items()) if not rt.which(b)}

    def preflight(self):
        if os.geteuid() != 0:
            raise rt.LabError('the lab needs root (network and mount '
                              'namespaces, bridges, FUSE mounts); run it '
                              'as root')
        missing = self.missing_binaries()
        if missing:
            raise rt.LabError(
                'missing binaries: %s; install the packages: %s' % (
                    ', '.join(sorted(missing)),
                    ' '.join(sorted(set(missing.values())))))
        if any(m in self.modes for m in ('shared', 'shared-nolock')) and \
                not os.path.exists('/dev/fuse'):
            raise rt.LabError('/dev/fuse is missing: the shared storage modes '
                              'need FUSE (modprobe fuse)')
        for top in [dst for _s, dst in NODE_BINDS] + [
                storagelib.MOUNT_BASE, '/sys'] + \
                storagelib.host_dirs_needed(self.modes):
            if not os.path.isdir(top):
                raise rt.LabError(
                    '%s does not exist on this host; the lab binds a '
                    'per-node folder over it and creates nothing outside '
                    'its state folder' % top)

    # Meta --------------------------------------------------------------------

    def _meta(self):
        try:
            with open(self._meta_file) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return {}

    def _save_meta(self, **changes):
        meta = self._meta()
        meta.update(changes)
        with open(self._meta_file + '.tmp', 'w') as f:
            json.dump(meta, f, indent=1, sort_keys=True)
        os.replace(self._meta_file + '.tmp', self._meta_file)

    @contextlib.contextmanager
    def _locked(self):
        os.makedirs(self.state_dir, exist_ok=True)
        with open(os.path.join(self.state_dir, 'lab.lock'), 'a') as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # Up ----------------------------------------------------------------------

    def up(self, progress=None):
        """Bring the lab up (or repair it).  Raises LabError on failure and
        leaves what was built for down() to remove."""
        say = progress or (lambda msg: None)
        self.preflight()
        started = time.monotonic()
        with self._locked():
            self._check_owner()
            for sub in ('logs', 'pids', 'ns', 'nodes', 'libmount'):
                os.makedirs(os.path.join(self.state_dir, sub), exist_ok=True)
            self._save_meta(modes=list(self.modes))
            say('configs and TLS certificates')
            for node in self.nodes:
                node.write_configs()
            try:
                tlslib.ensure_certificates(
                    os.path.join(self.state_dir, 'tls'),
                    [(n.name, n.address, n.tls_dir) for n in self.nodes])
            except tlslib.TLSError as exc:
                raise rt.LabError('TLS certificates: %s' % exc) from exc
            say('network: bridge %s, namespaces %s' % (
                BRIDGE, ', '.join(s.netns for s in self.sandboxes)))
            self._note_netns_dir()
            self._ensure_bridge()
            for sb in self.sandboxes:
                sb.ensure_network()
            say('mount namespaces')
            self._ensure_ns_folder()
            for sb in self.sandboxes:
                sb.ensure_namespaces()
            say('libvirtd on %s' % ', '.join(n.name for n in self.nodes))
            for node in self.nodes:
                node.start_libvirtd()
            say('storage: %s' % ', '.join(self.modes))
            self.storage.up(say)
            for node in self.nodes:
                node.wait_libvirtd()
            self._save_meta(up_seconds=round(time.monotonic() - started, 2))
            say('lab up in %.1fs' % (time.monotonic() - started))

    def _bridge_owner(self):
        """The state folder named in the bridge's alias, or None."""
        res = rt.host_run(['ip', '-j', 'link', 'show', 'dev', BRIDGE],
                          check=False)
        if res.returncode:
            return None
        links = json.loads(res.stdout or '[]')
        return (links[0].get('ifalias') or '') if links else None

    def _check_owner(self):
        """The names (bridge, namespaces, addresses) are fixed, so only
        one lab can be up on a machine: refuse to touch another's."""
        owner = self._bridge_owner()
        if owner and owner != self.state_dir:
            raise rt.LabError('another lab is up with state folder %s; take it'
                              ' down first (Lab(%r).down())' % (owner, owner))

    def _ensure_bridge(self):
        if not _link_exists(BRIDGE):
            rt.host_run(['ip', 'link', 'add', BRIDGE, 'type', 'bridge',
                         'stp_state', '0', 'forward_delay', '0'])
        rt.host_run(['ip', 'link', 'set', 'dev', BRIDGE, 'alias',
                     self.state_dir])
        addrs = rt.host_run(['ip', '-j', 'addr', 'show', 'dev', BRIDGE]).stdout
        have = {a.get('local') for link in json.loads(addrs or '[]')
                for a in link.get('addr_info', [])}
        if BRIDGE_ADDRESS not in have:
            rt.host_run(['ip', 'addr', 'add', '%s/%d' % (BRIDGE_ADDRESS,
                                                         PREFIXLEN),
                         'dev', BRIDGE])
        rt.host_run(['ip', 'link', 'set', BRIDGE, 'up'])

    def _ensure_ns_folder(self):
        """<state>/ns: a private bind mount on itself, as
        `unshare --mount=FILE` needs."""
        rt.bind_private(os.path.join(self.state_dir, 'ns'))

    def _note_netns_dir(self):
        meta = self._meta()
        if meta.get('created_run_netns') is None:
            self._save_meta(created_run_netns=not os.path.isdir(NETNS_DIR))

    def spawn_host(self, key, argv, log):
        """Start a long-lived command on the host (not in a sandbox) in a
        session of its own, and record it under `key`; returns its PID."""
        return self.procs.start(key, argv, log)

    # Down --------------------------------------------------------------------

    def down(self, progress=None, purge=False):
        """Stop everything and remove every namespace, link, mount and
        process of the lab.  With purge, also delete the state folder
        (disks, logs, gluster state).  Raises LabError listing leftovers."""
        say = progress or (lambda msg: None)
        if os.geteuid() != 0:
            raise rt.LabError('the lab needs root; run down as root')
        started = time.monotonic()
        problems = []
        os.makedirs(self.state_dir, exist_ok=True)
        with self._locked():
            self._check_owner()
            say('guests and libvirtd')
            for node in self.nodes:
                self._end_guests(node, problems)
            say('storage mounts')
            self.storage.down(say, problems)
            say('daemons and mount namespaces')
            for sb in self._all_sandboxes():
                self._end_sandbox(sb, problems)
            entries = (self.procs.entry(n) for n in self.procs.names())
            left = rt.terminate([e for e in entries if e])
            if left:
                problems.append('processes still alive: %s' % left)
            for name in self.procs.names():
                self.procs.forget(name)
            ns_folder = os.path.join(self.state_dir, 'ns')
            while rt.top_mount(rt.host_mounts(), ns_folder):
                if not rt.umount(ns_folder):
                    problems.append('cannot unmount %s' % ns_folder)
                    break
            say('network')
            for sb in self._all_sandboxes():
                if _link_exists(sb.veth):
                    rt.host_run(['ip', 'link', 'del', sb.veth], check=False)
                if sb.netns_exists():
                    res = rt.host_run(['ip', 'netns', 'del', sb.netns],
                                      check=False)
                    if res.returncode:
                        problems.append('ip netns del %s: %s' % (
                            sb.netns, rt.one_line(res.stderr)))
            if _link_exists(BRIDGE):
                rt.host_run(['ip', 'link', 'del', BRIDGE], check=False)
            self._remove_netns_dir(problems)
            problems += self._leftovers()
            if purge and not problems:
                say('purging %s' % self.state_dir)
                shutil.rmtree(self.state_dir, ignore_errors=True)
            elif os.path.isdir(self.state_dir):
                self._save_meta(down_seconds=round(
                    time.monotonic() - started, 2))
        if problems:
            raise rt.LabError('lab down left: ' + '; '.join(problems))
        say('lab down in %.1fs' % (time.monotonic() - started))

    def _end_guests(self, node, problems):
        """End QEMU first (it holds the disks), then libvirtd, then forget
        the domains."""
        if node.namespaces_exist():
            self._end_qemu_and_libvirtd(node, problems)
        # Persistent definitions (nova defines its domains) would come back
        # with the next libvirtd, and a new nova-compute refuses to start
        # beside instances it does not know.
        definitions = os.path.join(node.dir, 'etc-libvirt', 'qemu')
        if os.path.isdir(definitions):
            shutil.rmtree(definitions, ignore_errors=True)

    def _end_qemu_and_libvirtd(self, node, problems):
        daemons = {self.procs.pid(k) for k in self.procs.names()}
        guests = rt.entries(p for p in node.pids() if p not in daemons)
        guests += self._qemu_from_pidfiles(node)
        left = rt.terminate(guests)
        if left:
            problems.append('QEMU on %s still alive: %s' % (node.name, left))
        entry = self.procs.entry(node.proc_key)
        if entry:
            left = rt.terminate([entry])
            if left:
                problems.append('libvirtd on %s still alive' % node.name)
            self.procs.forget(node.proc_key)

    def _qemu_from_pidfiles(self, node):
        """QEMU processes named by libvirt's pid files, for a namespace that
        was lost; matched by command line and a mount namespace that is not
        the host's."""
        out = []
        folder = os.path.join(node.dir, 'run', 'libvirt', 'qemu')
        if not os.path.isdir(folder):
            return out
        host_mnt = rt.ns_inode('/proc/self/ns/mnt')
        for name in os.listdir(folder):
            if not name.endswith('.pid'):
                continue
            try:
                with open(os.path.join(folder, name)) as f:
                    pid = int(f.read().strip())
                with open('/proc/%d/cmdline' % pid, 'rb') as f:
                    cmd = f.read().split(b'\0')
            except (OSError, ValueError):
                continue
            wanted = ('/run/libvirt/qemu/' + name).encode()
            if wanted in cmd and rt.ns_inode('/proc/%d/ns/mnt' % pid) \
                    != host_mnt:
                out += rt.entries([pid])
        return out

    def _end_sandbox(self, sb, problems=None):
        """Unmount the FUSE mounts inside, end every process inside, and
        release the mount namespace."""
        problems = [] if problems is None else problems
        if sb.namespaces_exist():
            with contextlib.suppress(rt.LabError):
                mounts = sb.mounts()
                for m in reversed(mounts):
                    if m['fstype'].startswith('fuse'):
                        if not rt.umount(m['target'], run=sb.run):
                            problems.append('cannot unmount %s in %s' % (
                                m['target'], sb.name))
        left = rt.terminate(rt.entries(sb.pids()))
        if left:
            problems.append('processes still alive in %s: %s' % (sb.name,
                                                                 left))
        for key in self.procs.names():
            data = self.procs.record(key)
            if data and '--net=' + sb.netns_file in data['argv']:
                if rt.terminate([(data['pid'], data['start'])]):
                    problems.append('%s still alive' % key)
                self.procs.forget(key)
        while sb.mntns_mounted():
            if not rt.umount(sb.mntns_file):
                problems.append('cannot unmount %s' % sb.mntns_file)
                break
        for path in (sb.ready_file, sb.mntns_file):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _remove_netns_dir(self, problems):
        if not self._meta().get('created_run_netns'):
            return
        if not os.path.isdir(NETNS_DIR) or os.listdir(NETNS_DIR):
            return
        while rt.top_mount(rt.host_mounts(), NETNS_DIR):
            if not rt.umount(NETNS_DIR):
                problems.append('cannot unmount %s' % NETNS_DIR)
                return
        with contextlib.suppress(OSError):
            os.rmdir(NETNS_DIR)
        self._save_meta(created_run_netns=None)

    def _leftovers(self):
        out = []
        mounts = rt.host_mounts()
        under = rt.mounts_under(mounts, self.state_dir)
        if under:
            out.append('mounts under the state folder: %s' % ', '.join(under))
        for sb in self._all_sandboxes():
            if sb.netns_exists():
                out.append('network namespace %s' % sb.netns)
            if _link_exists(sb.veth):
                out.append('link %s' % sb.veth)
        if _link_exists(BRIDGE):
            out.append('bridge %s' % BRIDGE)
        return out

    # Status ------------------------------------------------------------------

    def status(self):
        """A dict: per node its namespaces, libvirtd PID and whether it
        answers, its URI and each storage mode's mount; the same for the
        gluster sandbox; 'up' is True when everything needed is there."""
        mounts = rt.host_mounts()
        out = {'state_dir': self.state_dir, 'modes': list(self.modes),
               'bridge': _link_exists(BRIDGE), 'nodes': {}}
        ok = out['bridge']
        for node in self.nodes:
            info = {'address': node.address, 'uri': node.uri,
                    'netns': node.netns_exists(),
                    'mntns': node.mntns_mounted(mounts),
                    'libvirtd_pid': node.libvirtd_pid()}
            info['libvirtd_answers'] = bool(
                info['libvirtd_pid'] and node.ready()
                and node.libvirtd_answers())
            info['storage'] = self.storage.node_status(node) \
                if node.ready() else {m: None for m in self.modes}
            ok = ok and info['libvirtd_answers'] and all(
                info['storage'].values())
            out['nodes'][node.name] = info
        if 'shared' in self.modes:
            out['gluster'] = self.storage.gluster_status()
            ok = ok and out['gluster']['glusterd_pid'] is not None and \
                bool(out['gluster']['host_mount'])
        out['up'] = bool(ok)
        return out


def format_status(status):
    """status() as a few lines of text."""
    lines = ['lab %s (state %s, modes %s, bridge %s)' % (
        'UP' if status['up'] else 'NOT UP', status['state_dir'],
        ','.join(status['modes']), 'yes' if status['bridge'] else 'no')]
    for name, info in status['nodes'].items():
        lines.append('  %s %s netns=%s mntns=%s libvirtd=%s answers=%s %s' % (
            name, info['address'], info['netns'], info['mntns'],
            info['libvirtd_pid'], info['libvirtd_answers'], info['uri']))
        lines.append('     storage: %s' % ', '.join(
            '%s=%s' % kv for kv in info['storage'].items()))
    if 'gluster' in status:
        g = status['gluster']
        lines.append('  gluster %s' % ', '.join('%s=%s' % kv
                                                for kv in g.items()))
    return '\n'.join(lines)
