"""A lab sandbox: a network namespace with a veth on the lab's bridge, plus
a private mount namespace kept alive by a bind mount of its nsfs file.

Commands enter it with ``nsenter`` (:meth:`Sandbox.argv`, :meth:`Sandbox.run`);
daemons started in it run in the foreground of their own session and are
recorded by the lab's supervisor, so that they are ended by PID.
"""

import contextlib
import json
import os

from migration_tempest_plugin.lab import storage as storagelib
from migration_tempest_plugin import runtime as rt

BRIDGE = 'labbr0'
BRIDGE_ADDRESS = '10.254.0.254'
PREFIXLEN = 24
NETNS_DIR = '/run/netns'


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

    def inside(self):
        """True when this process already runs in this sandbox's mount
        namespace: a command that reached a lab node over SSH, as a
        devstack host's own commands run on that host."""
        try:
            with open(self.ready_file) as f:
                wanted = int(f.read().strip())
        except (OSError, ValueError):
            return False
        return rt.ns_inode('/proc/self/ns/mnt') == wanted

    def argv(self, argv):
        """argv wrapped so that it runs inside this sandbox's namespaces
        (as it is, when this process runs there already)."""
        if self.inside():
            return [str(a) for a in argv]
        return ['nsenter', '--net=' + self.netns_file,
                '--mount=' + self.mntns_file, '--'] + [str(a) for a in argv]

    def run(self, argv, check=True, timeout=600, input=None, env=None):
        """Run a command inside the sandbox; returns a CompletedProcess with
        text stdout/stderr; raises LabCommandError if check and it fails."""
        if not self.inside() and not self.namespaces_exist():
            raise rt.LabError('%s: the lab is not up (no namespaces)'
                              % self.name)
        run_env = self.lab.env()
        run_env.update(env or {})
        return rt.host_run(self.argv(argv), check=check, timeout=timeout,
                           input=input, where=self.name, env=run_env,
                           shown=argv)

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
        if not link_exists(self.veth):
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
            self.lab.end_sandbox(self)
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


def link_exists(name):
    return rt.host_run(['ip', 'link', 'show', 'dev', name],
                       check=False).returncode == 0


class GlusterSandbox(Sandbox):
    """The storage sandbox, where the servers of the storage modes run
    (glusterd and its brick, nfs-ganesha)."""

    def __init__(self, lab, name, address):
        super().__init__(lab, name, address)
        self.dir = os.path.join(lab.state_dir, 'gluster')

    def binds(self):
        return storagelib.server_binds(self.lab, self)
