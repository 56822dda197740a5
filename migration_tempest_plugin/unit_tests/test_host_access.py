"""Host access from the compute-hosts file (no lab, no SSH: the `enter`
prefix of a lab entry is any argv, here `env`)."""

import os

import fixtures
import testtools
import yaml

from migration_tempest_plugin.hosts import access


def _conf(host_access, hosts_file):
    opts = type('Opts', (), dict(
        host_access=host_access, compute_hosts_file=hosts_file,
        libvirtd_log_path='/var/log/libvirt/libvirtd.log',
        ssh_user='stack', ssh_key_file=None))
    return type('Conf', (), {'migration': opts})


class TestLoadHosts(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path

    def write(self, entries):
        path = os.path.join(self.dir, 'compute-hosts.yaml')
        with open(path, 'w') as f:
            yaml.safe_dump(entries, f)
        return path

    def test_none_needs_no_file(self):
        self.assertEqual({}, access.load_hosts(_conf('none', None)))

    def test_lab_entry_runs_through_its_enter_prefix(self):
        log = os.path.join(self.dir, 'libvirtd.log')
        with open(log, 'w') as f:
            f.write('migrate flags=0x1\n')
        path = self.write({'lab-n1': {
            'enter': ['env', 'MTP_NODE=n1'],
            'libvirtd_log': log,
            'instances_path': '/srv/lab/local/nova',
            'restart': ['false']}})
        host = access.load_hosts(_conf('lab', path))['lab-n1']
        self.assertEqual('n1\n', host.execute(
            ['sh', '-c', 'echo $MTP_NODE']))
        self.assertEqual('migrate flags=0x1\n', host.libvirtd_log())
        self.assertEqual('/srv/lab/local/nova/u1/disk',
                         host.instance_disk('u1'))
        self.assertRaisesRegex(access.HostAccessError,
                               'restarting nova-compute on lab-n1',
                               host.restart_nova_compute)

    def test_lab_entry_without_enter_is_a_clear_error(self):
        path = self.write({'lab-n1': {'libvirtd_log': '/x'}})
        self.assertRaisesRegex(access.HostAccessError,
                               "compute host lab-n1 in .* has no 'enter'",
                               access.load_hosts, _conf('lab', path))

    def test_failed_command_names_host_and_command(self):
        host = access.LabComputeHost('lab-n2', [], '/x',
                                     instances_path='/i',
                                     libvirtd_log_path='/x')
        self.assertRaisesRegex(access.HostAccessError,
                               'sh on lab-n2: boom',
                               host.execute,
                               ['sh', '-c', 'echo boom >&2; exit 3'])

    def test_ssh_entry_defaults(self):
        path = self.write({'compute1': {'restart_command': 'true'}})
        host = access.load_hosts(_conf('ssh', path))['compute1']
        self.assertIsInstance(host, access.SSHComputeHost)
        self.assertEqual('compute1', host.address)
        self.assertEqual('stack', host.user)
        self.assertEqual('/opt/stack/data/nova/instances',
                         host.instances_path)
