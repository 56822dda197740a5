import testtools

from migration_tempest_plugin.hosts import nova_conf

DEVSTACK = """[DEFAULT]
# devstack writes comments too
compute_driver = libvirt.LibvirtDriver

[libvirt]
live_migration_uri = qemu+ssh://stack@%s/system
cpu_mode = none
virt_type = qemu

[pci]
alias = {"name": "a1"}
alias = {"name": "a2"}
"""


class TestSetOptions(testtools.TestCase):

    def test_replaces_an_option_and_keeps_everything_else(self):
        out = nova_conf.set_options(DEVSTACK, 'libvirt',
                                    {'cpu_mode': 'host-model'})
        self.assertEqual(DEVSTACK.replace('cpu_mode = none',
                                          'cpu_mode = host-model'), out)

    def test_appends_missing_options_at_the_end_of_the_section(self):
        out = nova_conf.set_options(DEVSTACK, 'libvirt', {
            'live_migration_tunnelled': True,
            'live_migration_parallel_connections': 4})
        self.assertIn('virt_type = qemu\n'
                      'live_migration_tunnelled = true\n'
                      'live_migration_parallel_connections = 4\n\n[pci]',
                      out)
        # Repeated keys of another section survive.
        self.assertEqual(2, out.count('alias = '))
        self.assertIn('# devstack writes comments too', out)

    def test_adds_a_missing_section(self):
        out = nova_conf.set_options('[DEFAULT]\nhost = a\n', 'libvirt',
                                    {'live_migration_bandwidth': 1})
        self.assertEqual('[DEFAULT]\nhost = a\n\n[libvirt]\n'
                         'live_migration_bandwidth = 1\n', out)

    def test_repeats_of_a_set_option_are_removed(self):
        text = '[libvirt]\na = 1\nb = 2\na = 3\n'
        out = nova_conf.set_options(text, 'libvirt', {'a': False})
        self.assertEqual('[libvirt]\na = false\nb = 2\n', out)

    def test_same_name_in_another_section_is_left_alone(self):
        text = '[DEFAULT]\na = 1\n[libvirt]\nb = 2\n'
        out = nova_conf.set_options(text, 'libvirt', {'a': 5})
        self.assertEqual('[DEFAULT]\na = 1\n[libvirt]\nb = 2\na = 5\n', out)

    def test_round_trip_through_get_option(self):
        out = nova_conf.set_options(DEVSTACK, 'libvirt',
                                    {'live_migration_permit_post_copy': True})
        self.assertEqual('true', nova_conf.get_option(
            out, 'libvirt', 'live_migration_permit_post_copy'))
        self.assertEqual('none', nova_conf.get_option(out, 'libvirt',
                                                      'cpu_mode'))
        self.assertIsNone(nova_conf.get_option(out, 'DEFAULT', 'cpu_mode'))

    def test_multi_line_value_is_refused(self):
        self.assertRaises(ValueError, nova_conf.set_options, DEVSTACK,
                          'libvirt', {'a': 'x\ny'})
