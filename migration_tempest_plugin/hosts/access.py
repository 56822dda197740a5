"""Reaching compute hosts from the tempest tests.

Two ways, one interface: SSH to devstack compute hosts (as
whitebox-tempest-plugin does), or the embedded lab's nodes on this machine.
What the tests need from a host is small: run a command, read the libvirtd
log, and read back an instance's disk as the guest sees it.
"""

import base64
import gzip
import os
import shlex

import yaml

DISK_TMP = '/tmp/migration-tempest-plugin-disk.raw'


class HostAccessError(Exception):
    pass


class ComputeHost(object):
    """One compute host; subclasses say how commands reach it."""

    def __init__(self, name, instances_path, libvirtd_log_path):
        self.name = name
        self.instances_path = instances_path
        self.libvirtd_log_path = libvirtd_log_path

    def execute(self, argv):
        """Run argv (a list) on the host as root; return its stdout."""
        raise NotImplementedError

    def read_text(self, path):
        return self.execute(['cat', path])

    def libvirtd_log(self):
        return self.read_text(self.libvirtd_log_path)

    def instance_disk(self, instance_uuid):
        return os.path.join(self.instances_path, instance_uuid, 'disk')

    def read_disk(self, instance_uuid):
        """The flattened content of the instance's root disk, as bytes.

        The server must be paused or stopped first: a disk read while the
        guest writes is not a state the guest ever saw. -U reads past the
        image lock of a paused QEMU, whose I/O is drained.
        """
        disk = self.instance_disk(instance_uuid)
        # gzip makes the transfer small: the oracle's blocks repeat a record.
        script = ('set -e; qemu-img convert -U -O raw {disk} {tmp}; '
                  'gzip -c {tmp} | base64 -w0; rm -f {tmp}').format(
                      disk=shlex.quote(disk), tmp=shlex.quote(DISK_TMP))
        encoded = self.execute(['sh', '-c', script])
        return gzip.decompress(base64.b64decode(encoded))


class SSHComputeHost(ComputeHost):
    """A devstack compute host reached over SSH with sudo."""

    def __init__(self, name, address, user, key_file, **kwargs):
        super().__init__(name, **kwargs)
        self.address = address
        self.user = user
        self.key_file = key_file

    def execute(self, argv):
        from tempest.lib.common import ssh
        client = ssh.Client(self.address, self.user,
                            key_filename=self.key_file)
        return client.exec_command('sudo ' + ' '.join(
            shlex.quote(a) for a in argv))


class LabComputeHost(ComputeHost):
    """A node of the embedded lab, reached through its namespaces."""

    def __init__(self, name, node, **kwargs):
        super().__init__(name, **kwargs)
        self.node = node

    def execute(self, argv):
        result = self.node.run(argv, check=False)
        if result.returncode:
            raise HostAccessError('%s on %s: %s' % (
                argv[0], self.name, (result.stderr or '').strip()[-300:]))
        return result.stdout

    def libvirtd_log(self):
        with open(self.node.libvirtd_log, errors='replace') as f:
            return f.read()


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
    lab = None
    if opts.host_access == 'lab':
        from migration_tempest_plugin.lab import nodes
        lab = nodes.Lab(entries.pop('_state_dir', nodes.DEFAULT_STATE_DIR))
    hosts = {}
    for name, entry in entries.items():
        common = dict(
            instances_path=entry.get('instances_path',
                                     '/opt/stack/data/nova/instances'),
            libvirtd_log_path=entry.get('libvirtd_log_path',
                                        opts.libvirtd_log_path))
        if lab is not None:
            hosts[name] = LabComputeHost(name, lab.node(entry['node']),
                                         **common)
        else:
            hosts[name] = SSHComputeHost(
                name, entry.get('address', name),
                entry.get('user', opts.ssh_user),
                entry.get('key_file', opts.ssh_key_file), **common)
    return hosts
