"""Reaching compute hosts from the tempest tests.

Two ways, one interface: SSH to devstack compute hosts (as
whitebox-tempest-plugin does), or the embedded lab's nodes on this machine.
What the tests need from a host is small: run a command, read the libvirtd
log, read back an instance's disk as the guest sees it, see whether an
instance left anything behind, and change nova-compute's nova.conf and
restart it.
"""

import base64
import gzip
import os
import shlex
import subprocess

import yaml

from migration_tempest_plugin import errors

DISK_TMP = '/tmp/migration-tempest-plugin-disk.raw'


class HostAccessError(errors.Error):
    pass


class ComputeHost(object):
    """One compute host; subclasses say how commands reach it."""

    def __init__(self, name, instances_path, libvirtd_log_path,
                 nova_conf=None):
        self.name = name
        self.instances_path = instances_path
        self.libvirtd_log_path = libvirtd_log_path
        self.nova_conf = nova_conf

    def execute(self, argv):
        """Run argv (a list) on the host as root; return its stdout."""
        raise NotImplementedError

    def read_text(self, path):
        return self.execute(['cat', path])

    def write_text(self, path, text):
        """Replace the file at `path` with `text`, atomically."""
        encoded = base64.b64encode(text.encode()).decode()
        script = ('set -e; echo {data} | base64 -d > {tmp}; '
                  'chmod --reference={path} {tmp} 2>/dev/null || true; '
                  'mv -f {tmp} {path}').format(
                      data=encoded, path=shlex.quote(path),
                      tmp=shlex.quote(path + '.mtp-tmp'))
        self.execute(['sh', '-c', script])

    def libvirtd_log(self):
        return self.read_text(self.libvirtd_log_path)

    def restart_nova_compute(self):
        raise NotImplementedError

    def has_domain(self, instance_uuid):
        """True when this host's libvirt knows the instance's domain."""
        out = self.execute(['sh', '-c', 'virsh -c qemu:///system domstate '
                            '%s >/dev/null 2>&1 && echo yes || echo no'
                            % shlex.quote(instance_uuid)])
        return out.strip() == 'yes'

    def has_instance_dir(self, instance_uuid):
        out = self.execute(['sh', '-c', 'test -e %s && echo yes || echo no'
                            % shlex.quote(os.path.dirname(
                                self.instance_disk(instance_uuid)))])
        return out.strip() == 'yes'

    def instance_disk(self, instance_uuid):
        return os.path.join(self.instances_path, instance_uuid, 'disk')

    def read_disk(self, instance_uuid):
        """The flattened content of the instance's root disk, as bytes.

        The server must be paused or stopped first: a disk read while the
        guest writes is not a state the guest ever saw. -U reads past the
        image lock of a paused QEMU, whose I/O is drained.
        """
        disk = self.instance_disk(instance_uuid)
        # Read as a cache=none QEMU does (O_DIRECT), past this host's page
        # cache: on shared storage it may hold stale pages of a file another
        # host wrote (seen with GlusterFS in the lab).  A filesystem without
        # O_DIRECT (nova then uses writethrough) is read through the cache.
        # gzip makes the transfer small: the oracle's blocks repeat a record.
        script = ('set -e; qemu-img convert -U -T none -O raw {disk} {tmp} '
                  '2>/dev/null || qemu-img convert -U -O raw {disk} {tmp}; '
                  'gzip -c {tmp} | base64 -w0; rm -f {tmp}').format(
                      disk=shlex.quote(disk), tmp=shlex.quote(DISK_TMP))
        encoded = self.execute(['sh', '-c', script])
        return gzip.decompress(base64.b64decode(encoded))


class SSHComputeHost(ComputeHost):
    """A devstack compute host reached over SSH with sudo."""

    def __init__(self, name, address, user, key_file, restart_command=None,
                 **kwargs):
        super().__init__(name, **kwargs)
        self.address = address
        self.user = user
        self.key_file = key_file
        self.restart_command = restart_command

    def execute(self, argv):
        from tempest.lib.common import ssh
        client = ssh.Client(self.address, self.user,
                            key_filename=self.key_file)
        return client.exec_command('sudo ' + ' '.join(
            shlex.quote(a) for a in argv))

    def restart_nova_compute(self):
        if not self.restart_command:
            raise HostAccessError('no restart_command for compute host %s '
                                  'in [migration] compute_hosts_file'
                                  % self.name)
        self.execute(['sh', '-c', self.restart_command])


class LabComputeHost(ComputeHost):
    """A node of the embedded lab cloud, on this machine.

    The compute-hosts file that `migration-lab cloud up` writes says how
    to reach each node: `enter`, the argv prefix that runs a command in the
    node's namespaces; `libvirtd_log`, the node's libvirtd log as a path on
    this machine; `restart`, the lab cloud's restart-compute command.  So
    the plugin needs nothing from the lab's code.
    """

    # Commands inside a node find sbin tools and speak plain C.
    _PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

    def __init__(self, name, enter, libvirtd_log_file, restart_argv=None,
                 **kwargs):
        super().__init__(name, **kwargs)
        self.enter = list(enter)
        self.libvirtd_log_file = libvirtd_log_file
        self.restart_argv = restart_argv

    def _run(self, argv, what):
        env = dict(os.environ, PATH=self._PATH, LC_ALL='C')
        try:
            result = subprocess.run(argv, capture_output=True, text=True,
                                    stdin=subprocess.DEVNULL, env=env,
                                    timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HostAccessError('%s on %s: %s' % (what, self.name, exc))
        if result.returncode:
            raise HostAccessError('%s on %s: %s' % (
                what, self.name,
                (result.stderr or result.stdout).strip()[-300:]))
        return result.stdout

    def execute(self, argv):
        return self._run(self.enter + [str(a) for a in argv], argv[0])

    def libvirtd_log(self):
        with open(self.libvirtd_log_file, errors='replace') as f:
            return f.read()

    def restart_nova_compute(self):
        # The lab cloud's own command: it runs here, not inside the node,
        # and returns once the restarted service has reported to nova.
        if not self.restart_argv:
            raise HostAccessError('no restart for compute host %s in '
                                  '[migration] compute_hosts_file'
                                  % self.name)
        self._run(self.restart_argv, 'restarting nova-compute')


def load_hosts(conf):
    """Map of hypervisor hostname -> ComputeHost, from [migration]."""
    opts = conf.migration
    if opts.host_access == 'none':
        return {}
    if not opts.compute_hosts_file:
        raise HostAccessError('[migration] host_access = %s needs '
                              'compute_hosts_file' % opts.host_access)
    with open(opts.compute_hosts_file) as f:
        entries = yaml.safe_load(f) or {}
    hosts = {}
    for name, entry in entries.items():
        common = dict(
            instances_path=entry.get('instances_path',
                                     '/opt/stack/data/nova/instances'),
            libvirtd_log_path=entry.get('libvirtd_log_path',
                                        opts.libvirtd_log_path),
            nova_conf=entry.get('nova_conf'))
        if opts.host_access == 'lab':
            try:
                hosts[name] = LabComputeHost(
                    name, entry['enter'], entry['libvirtd_log'],
                    restart_argv=entry.get('restart'), **common)
            except KeyError as exc:
                raise HostAccessError(
                    'compute host %s in %s has no %s' % (
                        name, opts.compute_hosts_file, exc))
        else:
            hosts[name] = SSHComputeHost(
                name, entry.get('address', name),
                entry.get('user', opts.ssh_user),
                entry.get('key_file', opts.ssh_key_file),
                restart_command=entry.get('restart_command'), **common)
    return hosts
