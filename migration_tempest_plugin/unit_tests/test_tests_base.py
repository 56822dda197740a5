"""The pure parts of the tempest tests' base: which hosts a test uses,
which migrations its cleanup aborts."""

from tempest.lib import exceptions as lib_exc
import testtools

from migration_tempest_plugin import storage_modes
from migration_tempest_plugin.tests import base


class TestChooseHosts(testtools.TestCase):

    COMPUTES = ['c3', 'c1', 'c2']

    def test_unset_takes_the_first_two(self):
        self.assertEqual(('c1', 'c2', False),
                         base.choose_hosts(self.COMPUTES))

    def test_source_set(self):
        self.assertEqual(('c2', 'c1', True),
                         base.choose_hosts(self.COMPUTES, source='c2'))

    def test_dest_set(self):
        self.assertEqual(('c1', 'c3', True),
                         base.choose_hosts(self.COMPUTES, dest='c3'))
        self.assertEqual(('c2', 'c1', True),
                         base.choose_hosts(self.COMPUTES, dest='c1'))

    def test_both_set(self):
        self.assertEqual(('c3', 'c1', True),
                         base.choose_hosts(self.COMPUTES, 'c3', 'c1'))

    def test_unknown_host_is_a_configuration_error(self):
        self.assertRaisesRegex(lib_exc.InvalidConfiguration,
                               'migration_dest_host = c9 is not among',
                               base.choose_hosts, self.COMPUTES, dest='c9')

    def test_same_host_twice_is_a_configuration_error(self):
        self.assertRaisesRegex(lib_exc.InvalidConfiguration, 'both c1',
                               base.choose_hosts, self.COMPUTES, 'c1', 'c1')

    def test_one_compute_is_not_enough(self):
        self.assertRaisesRegex(lib_exc.InvalidConfiguration,
                               'found c1$', base.choose_hosts, ['c1'])
        self.assertRaisesRegex(lib_exc.InvalidConfiguration,
                               'found none', base.choose_hosts, [])


class TestAbortable(testtools.TestCase):

    def test_post_copy_and_finished_migrations_are_left_alone(self):
        found = [{'id': 1, 'status': 'queued'},
                 {'id': 2, 'status': 'preparing'},
                 {'id': 3, 'status': 'running'},
                 {'id': 4, 'status': 'running (post-copy)'},
                 {'id': 5, 'status': 'completed'}]
        self.assertEqual([1, 2, 3], [m['id'] for m in base.abortable(found)])


class TestStorageKinds(testtools.TestCase):
    """What each [migration] storage means to the tests through nova."""

    def test_every_storage_choice_has_a_kind(self):
        for kind, _help in storage_modes.plugin_kinds():
            self.assertIn(kind, storage_modes.PLUGIN_KINDS)

    def test_nova_counts_rbd_disks_as_shared_not_its_instance_folders(self):
        self.assertEqual(
            [(False, False), (True, True), (True, False)],
            [(storage_modes.shared_disks(k),
              storage_modes.shared_instances_path(k))
             for k in ('local', 'nfs', 'rbd')])
        self.assertEqual('rbd', storage_modes.plugin_kind('rbd').disks_in)
        self.assertRaises(storage_modes.UnknownMode,
                          storage_modes.plugin_kind, 'ceph')

    def test_console_artefacts_follow_the_instances_path(self):
        # Two hosts write one console.log only on a shared instances path.
        self.assertEqual(('gap',), base.console_artefacts('local'))
        self.assertEqual(('gap',), base.console_artefacts('rbd'))
        self.assertEqual(base.SHARED_CONSOLE_ARTEFACTS,
                         base.console_artefacts('nfs'))
