import os

from tempest import config as tempest_config
from tempest.test_discover import plugins

from migration_tempest_plugin import config


class MigrationTempestPlugin(plugins.TempestPlugin):
    def load_tests(self):
        base_path = os.path.split(os.path.dirname(
            os.path.abspath(__file__)))[0]
        test_dir = 'migration_tempest_plugin/tests'
        full_test_dir = os.path.join(base_path, test_dir)
        return full_test_dir, base_path

    def register_opts(self, conf):
        config.register_opts(conf)

    def get_opt_lists(self):
        return config.list_opts()

    def get_service_clients(self):
        params = {
            'name': 'migration_compute',
            'service_version': 'migration_compute',
            'module_path': 'migration_tempest_plugin.services',
            'client_names': ['LiveMigrationsClient'],
        }
        params.update(tempest_config.service_client_config('compute'))
        return [params]
