"""The lab: two libvirt nodes on one machine, their network, namespaces
and daemons (a sandbox is :mod:`sandbox`, a libvirt node :mod:`libvirtd`).

The lab is made of three "sandboxes", each a network namespace plus a
private mount namespace:

* ``lab-n1`` (10.254.0.1) and ``lab-n2`` (10.254.0.2): one libvirtd each,
  with its own /run, /etc/libvirt, /var/lib/libvirt, /var/log/libvirt,
  /var/cache/libvirt and /srv (bind mounts of per-node folders), so that the
  two daemons share no state, as two real hosts would not;
* ``lab-gl`` (10.254.0.253): glusterd and its brick, for the ``shared``
  storage mode (see :mod:`storage`).

The three veth pairs hang on the bridge ``labbr0`` (10.254.0.254/24), which
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
import time

from migration_tempest_plugin.lab import libvirtd
from migration_tempest_plugin.lab import sandbox
from migration_tempest_plugin.lab import storage as storagelib
from migration_tempest_plugin.lab import teardown
from migration_tempest_plugin.lab import tls as tlslib
from migration_tempest_plugin import runtime as rt
from migration_tempest_plugin import storage_modes

# Where the lab and the lab cloud keep everything, unless told otherwise.
DEFAULT_STATE_DIR = os.environ.get('MIGRATION_LAB_STATE',
                                   '/var/tmp/migration-lab')
NODE_SPECS = (('n1', '10.254.0.1'), ('n2', '10.254.0.2'))
GLUSTER_SPEC = ('gl', storagelib.SERVER_ADDRESS)

# Binary -> Debian package, for the preflight message.
BINARIES = {
    'ip': 'iproute2',
    'unshare': 'util-linux',
    'nsenter': 'util-linux',
    'mount': 'mount',
    'umount': 'mount',
    'libvirtd': 'libvirt-daemon-system',
    'tini': 'tini',
    'virsh': 'libvirt-clients',
    'qemu-system-x86_64': 'qemu-system-x86',
    'qemu-img': 'qemu-utils',
    'openssl': 'openssl',
}


class Lab:
    """The two-node lab.  ``up()`` is idempotent and repairs a partial lab;
    ``down()`` removes everything outside the state folder and works on a
    partial lab; ``status()`` says what is there."""

    def __init__(self, state_dir=DEFAULT_STATE_DIR, modes=storage_modes.NAMES,
                 libvirt_debug=True):
        self.modes = tuple(storagelib.check_mode(m) for m in modes)
        self.state_dir = os.path.abspath(state_dir)
        self.libvirt_debug = libvirt_debug
        self.log_dir = os.path.join(self.state_dir, 'logs')
        self.procs = rt.Supervisor(os.path.join(self.state_dir, 'pids'),
                                   self.log_dir, env=self.env())
        self.nodes = [libvirtd.Node(self, name, addr)
                      for name, addr in NODE_SPECS]
        self.gluster = sandbox.GlusterSandbox(self, *GLUSTER_SPEC)
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
        if storagelib.served(self.modes):
            out.append(self.gluster)
        return out

    def all_sandboxes(self):
        return list(self.nodes) + [self.gluster]

    # Preflight ---------------------------------------------------------------

    def missing_binaries(self):
        """{binary: debian package} of what is missing for these modes."""
        wanted = dict(BINARIES)
        wanted.update(storagelib.packages(self.modes))
        missing = {b: p for b, p in wanted.items()
                   if not (os.path.exists(b) if b.startswith('/')
                           else rt.which(b))}
        return dict(sorted(missing.items()))

    def preflight(self):
        if os.geteuid() != 0:
            raise rt.LabError('the lab needs root (network and mount '
                              'namespaces, bridges, FUSE mounts); run it '
                              'as root')
        missing = self.missing_binaries()
        if missing:
            raise rt.LabError(
                'missing binaries or plug-ins: %s; install the packages: '
                '%s' % (
                    ', '.join(sorted(missing)),
                    ' '.join(sorted(set(missing.values())))))
        if any(m.fuse for m in storagelib.modes(self.modes)) and \
                not os.path.exists('/dev/fuse'):
            raise rt.LabError('/dev/fuse is missing: the shared storage modes '
                              'need FUSE (modprobe fuse)')
        for top in [dst for _s, dst in libvirtd.NODE_BINDS] + [
                storagelib.MOUNT_BASE, '/sys'] + \
                storagelib.host_dirs_needed(self.modes):
            if not os.path.isdir(top):
                raise rt.LabError(
                    '%s does not exist on this host; the lab binds a '
                    'per-node folder over it and creates nothing outside '
                    'its state folder' % top)

    # Meta --------------------------------------------------------------------

    def meta(self):
        return rt.read_json(self._meta_file)

    def save_meta(self, **changes):
        rt.update_json(self._meta_file, **changes)

    @contextlib.contextmanager
    def locked(self):
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
        with self.locked():
            self.check_owner()
            for sub in ('logs', 'pids', 'ns', 'nodes', 'libmount'):
                os.makedirs(os.path.join(self.state_dir, sub), exist_ok=True)
            self.save_meta(modes=list(self.modes))
            say('configs and TLS certificates')
            for node in self.nodes:
                node.write_configs()
            try:
                tlslib.ensure_certificates(
                    os.path.join(self.state_dir, 'tls'),
                    [(n.name, n.address, n.tls_dir) for n in self.nodes])
            except (OSError, ValueError) as exc:
                raise rt.LabError('TLS certificates: %s' % exc) from exc
            say('network: bridge %s, namespaces %s' % (
                sandbox.BRIDGE, ', '.join(s.netns for s in self.sandboxes)))
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
            self.save_meta(up_seconds=round(time.monotonic() - started, 2))
            say('lab up in %.1fs' % (time.monotonic() - started))

    def _bridge_owner(self):
        """The state folder named in the bridge's alias, or None."""
        res = rt.host_run(['ip', '-j', 'link', 'show', 'dev', sandbox.BRIDGE],
                          check=False)
        if res.returncode:
            return None
        links = json.loads(res.stdout or '[]')
        return (links[0].get('ifalias') or '') if links else None

    def check_owner(self):
        """The names (bridge, namespaces, addresses) are fixed, so only
        one lab can be up on a machine: refuse to touch another's."""
        owner = self._bridge_owner()
        if owner and owner != self.state_dir:
            raise rt.LabError('another lab is up with state folder %s; take it'
                              ' down first (Lab(%r).down())' % (owner, owner))

    def _ensure_bridge(self):
        if not sandbox.link_exists(sandbox.BRIDGE):
            rt.host_run(['ip', 'link', 'add', sandbox.BRIDGE, 'type', 'bridge',
                         'stp_state', '0', 'forward_delay', '0'])
        rt.host_run(['ip', 'link', 'set', 'dev', sandbox.BRIDGE, 'alias',
                     self.state_dir])
        addrs = rt.host_run(['ip', '-j', 'addr', 'show', 'dev',
                             sandbox.BRIDGE]).stdout
        have = {a.get('local') for link in json.loads(addrs or '[]')
                for a in link.get('addr_info', [])}
        if sandbox.BRIDGE_ADDRESS not in have:
            address = '%s/%d' % (sandbox.BRIDGE_ADDRESS, sandbox.PREFIXLEN)
            rt.host_run(['ip', 'addr', 'add', address, 'dev',
                         sandbox.BRIDGE])
        rt.host_run(['ip', 'link', 'set', sandbox.BRIDGE, 'up'])

    def _ensure_ns_folder(self):
        """<state>/ns: a private bind mount on itself, as
        `unshare --mount=FILE` needs."""
        rt.bind_private(os.path.join(self.state_dir, 'ns'))

    def _note_netns_dir(self):
        meta = self.meta()
        if meta.get('created_run_netns') is None:
            self.save_meta(
                created_run_netns=not os.path.isdir(sandbox.NETNS_DIR))

    def spawn_host(self, key, argv, log):
        """Start a long-lived command on the host (not in a sandbox) in a
        session of its own, and record it under `key`; returns its PID."""
        return self.procs.start(key, argv, log)

    # Down -------------------------------------------------------------------

    def down(self, progress=None, purge=False):
        """Stop everything and remove every namespace, link, mount and
        process of the lab.  With purge, also delete the state folder
        (disks, logs, gluster state).  Raises LabError listing leftovers
        (:mod:`teardown`)."""
        teardown.down(self, progress, purge)

    def end_sandbox(self, sb, problems=None):
        teardown.end_sandbox(self, sb, problems)

    # Status ------------------------------------------------------------------

    def status(self):
        """A dict: per node its namespaces, libvirtd PID and whether it
        answers, its URI and each storage mode's mount; the same for the
        gluster sandbox; 'up' is True when everything needed is there."""
        mounts = rt.host_mounts()
        out = {'state_dir': self.state_dir, 'modes': list(self.modes),
               'bridge': sandbox.link_exists(sandbox.BRIDGE), 'nodes': {}}
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
        servers, servers_ok = self.storage.status()
        out.update(servers)
        ok = ok and servers_ok
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
    for server in status:   # the storage servers (a mode's status_key)
        if server not in ('state_dir', 'modes', 'bridge', 'nodes', 'up'):
            lines.append('  %s %s' % (server, ', '.join(
                '%s=%s' % kv for kv in status[server].items())))
    return '\n'.join(lines)
