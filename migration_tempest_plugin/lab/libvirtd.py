"""A libvirt node of the lab: a sandbox with its own libvirtd, listening
without authentication on the node's own address only, and its own /run,
/etc/libvirt, /var/lib/libvirt, /var/log/libvirt and /var/cache/libvirt.
"""

import os
import socket
import uuid

import psutil

from migration_tempest_plugin.lab import sandbox
from migration_tempest_plugin.lab import storage as storagelib
from migration_tempest_plugin import runtime as rt

LIBVIRTD_PORT = 16509
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
        '# Written by migration_tempest_plugin.lab.libvirtd on every lab up.',
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
        '# Written by migration_tempest_plugin.lab.libvirtd on every lab up.',
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


class Node(sandbox.Sandbox):
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

    def host_path(self, mode, relpath=''):
        """Host-side path of the file this node sees at
        storage_path(mode)/relpath (`relpath` may also be that full in-node
        path): the folder behind this node's view of the mode."""
        try:
            return self.lab.storage.host_path(self, mode, relpath)
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
        """libvirtd under tini as a child subreaper: libvirt daemonizes
        QEMU, so an exited QEMU is reaped by whoever adopts it, and libvirt
        waits (polling every 200 ms) until it is reaped.  A PID 1 that reaps
        late (as in some containers) adds seconds to every destroy and
        every migration; tini reaps at once."""
        if self.libvirtd_pid():
            return None
        return self.spawn(self.proc_key, [
            'tini', '-s', '--',
            'libvirtd', '--listen', '--config', '/etc/libvirt/libvirtd.conf',
            '--pid-file', '/run/libvirt/libvirtd.pid'], self.libvirtd_output)

    def libvirtd_daemon(self):
        """The libvirtd process itself (a psutil.Process; the recorded PID
        is tini's), or None."""
        pid = self.libvirtd_pid()
        if not pid:
            return None
        try:
            for child in psutil.Process(pid).children():
                if child.name() == 'libvirtd':
                    return child
        except psutil.NoSuchProcess:
            pass
        return None

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
