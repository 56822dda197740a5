"""The soak's pure parts: its flag sets, refusal and summary."""

import testtools

from migration_tempest_plugin import flags
from migration_tempest_plugin.lab import results
from migration_tempest_plugin.lab import soak


class TestSoak(testtools.TestCase):

    def test_nova_sets_per_storage(self):
        local = soak.nova_flag_set('local')
        self.assertTrue(flags.has(local.flags, 'NON_SHARED_INC'))
        shared = soak.nova_flag_set('shared')
        self.assertFalse(flags.has(shared.flags, 'NON_SHARED_INC'))
        self.assertTrue(flags.has(shared.flags, 'LIVE'))

    def test_storage_without_a_nova_path_is_refused(self):
        exc = self.assertRaises(results.CaseError, soak.Soak, None,
                                'shared-nolock', 3)
        self.assertIn('shared-nolock', str(exc))

    def test_summary_of_a_clean_soak(self):
        result = soak.SoakResult('local', 4, rounds_clean=4,
                                 acked_writes=900, seconds=30.0,
                                 migration_s=[2.0, 4.0])
        self.assertEqual(8.0, result.rounds_per_minute)
        text = result.summary()
        self.assertIn('4 rounds clean in 30s', text)
        self.assertIn('8.0 rounds/min', text)
        self.assertIn('mean migration 3.0s', text)

    def test_summary_of_a_loss_names_the_round(self):
        result = soak.SoakResult('shared', 10, rounds_clean=6,
                                 verdict='DATA-LOSS', message='3 lost',
                                 seconds=60.0)
        self.assertIn('DATA-LOSS in round 7 (after 6 clean)',
                      result.summary())
        self.assertIn('3 lost', result.summary())
