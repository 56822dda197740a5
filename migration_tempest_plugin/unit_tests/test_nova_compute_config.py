"""NovaComputeConfig on real files through the lab host's local commands
(an empty `enter` prefix); only nova's services API is stood in for."""

import itertools
import os

import fixtures
from tempest.lib import exceptions as lib_exc
import testtools

from migration_tempest_plugin.hosts import access
from migration_tempest_plugin.tests import fixtures as mtp_fixtures

DEPLOYED = ('[DEFAULT]\ndebug = true\n\n[libvirt]\n# deployed\n'
            'virt_type = qemu\n')


class Services(object):
    """nova's os-services: every listing is a newer report from every
    compute (as when both restarted)."""

    def __init__(self, names):
        self.names = names
        self.ticks = itertools.count()

    def list_services(self, binary):
        tick = next(self.ticks)
        return {'services': [{'host': n, 'state': 'up',
                              'updated_at': str(tick)} for n in self.names]}


class TestNovaComputeConfig(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.hosts = [self._host('n1'), self._host('n2')]

    def _host(self, name, restart='true'):
        conf = os.path.join(self.dir, name + '.conf')
        with open(conf, 'w') as f:
            f.write(DEPLOYED)
        marker = os.path.join(self.dir, name + '.restarts')
        return access.LabComputeHost(
            name, [], '/nonexistent', nova_conf=conf,
            instances_path=self.dir, libvirtd_log_path='/nonexistent',
            restart_argv=['sh', '-c', 'echo x >> %s; %s' % (marker,
                                                            restart)])

    def _fixture(self, hosts=None):
        hosts = hosts or self.hosts
        return mtp_fixtures.NovaComputeConfig(
            hosts, {'live_migration_bandwidth': 4},
            Services([h.name for h in hosts]), timeout=10)

    def _read(self, path):
        with open(path) as f:
            return f.read()

    def _restarts(self, name):
        path = os.path.join(self.dir, name + '.restarts')
        return len(self._read(path).split()) if os.path.exists(path) else 0

    def _orig(self, host):
        return host.nova_conf + mtp_fixtures.ORIGINAL_SUFFIX

    def test_original_kept_beside_and_restored(self):
        fixture = self._fixture()
        fixture.setUp()
        for host in self.hosts:
            self.assertIn('live_migration_bandwidth = 4',
                          self._read(host.nova_conf))
            self.assertEqual(DEPLOYED, self._read(self._orig(host)))
            self.assertEqual(1, self._restarts(host.name))
        fixture.cleanUp()
        for host in self.hosts:
            self.assertEqual(DEPLOYED, self._read(host.nova_conf))
            self.assertFalse(os.path.exists(self._orig(host)))
            self.assertEqual(2, self._restarts(host.name))
        self.assertEqual([], fixture.leftovers)

    def test_a_killed_run_is_undone_before_anything_changes(self):
        # What a SIGKILL after setUp leaves: the test's file, the original
        # beside it.
        first = self._fixture()
        first.setUp()
        left = self.hosts[0]
        self.assertNotEqual(DEPLOYED, self._read(left.nova_conf))
        second = mtp_fixtures.NovaComputeConfig(
            self.hosts, {'live_migration_permit_post_copy': True},
            Services(['n1', 'n2']), timeout=10)
        second.setUp()
        self.assertEqual(['n1', 'n2'], second.leftovers)
        text = self._read(left.nova_conf)
        # The new options on the deployed file, not on the killed run's.
        self.assertIn('live_migration_permit_post_copy = true', text)
        self.assertNotIn('live_migration_bandwidth', text)
        self.assertEqual(DEPLOYED, self._read(self._orig(left)))
        second.cleanUp()
        for host in self.hosts:
            self.assertEqual(DEPLOYED, self._read(host.nova_conf))
            self.assertFalse(os.path.exists(self._orig(host)))

    def test_every_compute_restarts_when_one_restart_fails(self):
        fixture = self._fixture()
        fixture.setUp()
        broken = self._host('n0', restart='echo no unit >&2; exit 5')
        # n0 fails first; n1 and n2 must still restart at cleanup.
        fixture.hosts.insert(0, broken)
        error = self.assertRaises(lib_exc.TempestException,
                                  fixture.cleanUp)
        self.assertIn('n0', str(error))
        self.assertIn('no unit', str(error))
        for host in self.hosts:
            self.assertEqual(DEPLOYED, self._read(host.nova_conf))
            self.assertEqual(2, self._restarts(host.name))

    def test_all_restart_failures_are_reported(self):
        hosts = [self._host('n1', restart='exit 3'),
                 self._host('n2', restart='echo n2 down >&2; exit 4')]
        fixture = self._fixture(hosts)
        error = self.assertRaises(fixtures.MultipleExceptions,
                                  fixture.setUp)
        text = str(error)
        self.assertIn('nova-compute restart: n1:', text)
        self.assertIn('n2 down', text)
        # setUp's failure ran the cleanup: files back, both restarted again.
        for host in hosts:
            self.assertEqual(DEPLOYED, self._read(host.nova_conf))
            self.assertFalse(os.path.exists(self._orig(host)))
            self.assertEqual(2, self._restarts(host.name))

    def test_no_nova_conf_is_a_configuration_error(self):
        host = access.LabComputeHost('n3', [], '/x', instances_path='/i',
                                     libvirtd_log_path='/x')
        fixture = self._fixture([host])
        error = self.assertRaises(fixtures.MultipleExceptions,
                                  fixture.setUp)
        self.assertIn('no nova_conf for compute host n3', str(error))

    def test_restart_waits_for_a_newer_report(self):
        fixture = self._fixture()
        fixture.services = Services(['n2'])    # n1 never reports
        fixture.timeout = 1
        error = self.assertRaises(fixtures.MultipleExceptions,
                                  fixture.setUp)
        self.assertIn('did not report', str(error))
