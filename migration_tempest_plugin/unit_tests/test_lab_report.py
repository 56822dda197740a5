import testtools

from migration_tempest_plugin.lab import plots


class TestPlots(testtools.TestCase):

    def setUp(self):
        super().setUp()
        if not plots.available():
            self.skipTest('matplotlib is not installed (the lab extra)')

    def assertPng(self, data):
        self.assertTrue(data.startswith(b'\x89PNG\r\n\x1a\n'))

    def test_disk_copied(self):
        self.assertPng(plots.disk_copied(
            [('local', {'NON_SHARED_INC': [2.0, 30.5],
                        'NON_SHARED_DISK': [74.0]}),
             ('shared-nolock', {'NON_SHARED_INC': [12.0]})],
            [('NON_SHARED_INC', 'inc'), ('NON_SHARED_DISK', 'disk')]))

    def test_migration_time(self):
        self.assertPng(plots.migration_time(
            [('nova-block', [('local', 10.0), ('shared-nolock', 12.0)]),
             ('nova-block+cut-network', [('local', 30.0)])],
            ['local', 'shared-nolock'], plain=1))

    def test_lost_writes_is_deterministic(self):
        bars = [('shared-nolock / nova-block', 217, 0),
                ('shared-nolock / nova-block (run 2)', 0, 3)]
        self.assertPng(plots.lost_writes(bars))
        self.assertEqual(plots.lost_writes(bars), plots.lost_writes(bars))
