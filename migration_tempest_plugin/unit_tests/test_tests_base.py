"""The pure parts of the tempest tests' base: which hosts a test uses,
which migrations its cleanup aborts."""

from tempest.lib import exceptions as lib_exc
import testtools

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
