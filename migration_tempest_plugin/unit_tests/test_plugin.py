import os
from unittest import mock

from oslo_config import cfg
from tempest import config as tempest_config
from tempest.test_discover import plugins
import testtools

from migration_tempest_plugin import config
from migration_tempest_plugin import plugin


class TestPluginLoading(testtools.TestCase):

    def test_tempest_plugin_manager_finds_us(self):
        manager = plugins.TempestTestPluginManager()
        names = [ext.name for ext in manager.ext_plugins]
        self.assertIn('migration_tempest_plugin', names)
        ext = manager.ext_plugins['migration_tempest_plugin']
        self.assertIsInstance(ext.obj, plugin.MigrationTempestPlugin)

    def test_load_tests_points_at_the_tempest_tests(self):
        test_dir, base = plugin.MigrationTempestPlugin().load_tests()
        self.assertTrue(os.path.isdir(test_dir))
        self.assertEqual(os.path.join(base, 'migration_tempest_plugin',
                                      'tests'), test_dir)
        # Unit tests live outside what tempest discovers.
        self.assertFalse(os.path.exists(os.path.join(test_dir,
                                                     'unit_tests')))

    def test_options_register_beside_tempest(self):
        conf = cfg.ConfigOpts()
        # tempest's own options first, as tempest does, then ours.
        for group, opts in tempest_config._opts:
            conf.register_opts(opts, group=group)
        plugin.MigrationTempestPlugin().register_opts(conf)
        conf([], default_config_files=[])
        self.assertEqual('local', conf.migration.storage)
        self.assertEqual(1, conf.migration.live_migration_parallel_connections)
        # tempest's groups are untouched.
        self.assertTrue(conf['compute-feature-enabled'].live_migration)
        self.assertEqual(1, conf.compute.min_compute_nodes)

    def test_our_group_is_ours_alone(self):
        tempest_groups = {getattr(group, 'name', group)
                          for group, _ in tempest_config._opts}
        self.assertIn('compute-feature-enabled', tempest_groups)
        for group, _ in config.list_opts():
            self.assertNotIn(group, tempest_groups)

    def test_storage_choices_enforced(self):
        conf = cfg.ConfigOpts()
        config.register_opts(conf)
        conf([], default_config_files=[])
        self.assertRaises(ValueError, conf.set_override, 'storage', 'ceph',
                          group='migration')

    def test_get_opt_lists(self):
        lists = plugin.MigrationTempestPlugin().get_opt_lists()
        self.assertEqual(['migration'], [group for group, _ in lists])


class TestServiceClients(testtools.TestCase):

    def test_live_migrations_client_is_registered(self):
        with mock.patch.object(tempest_config, 'service_client_config',
                               return_value={'service': 'compute'}):
            params, = plugin.MigrationTempestPlugin().get_service_clients()
        self.assertEqual('migration_tempest_plugin.services',
                         params['module_path'])
        self.assertEqual(['LiveMigrationsClient'], params['client_names'])
        self.assertEqual('compute', params['service'])
