import testtools

from migration_tempest_plugin import flags

BASE = {'LIVE', 'PEER2PEER', 'UNDEFINE_SOURCE', 'PERSIST_DEST'}


def nova(block=False, paused=False, copies_disks=True, **options):
    value = flags.nova_flags(flags.NovaOptions(**options),
                             block_migration=block, paused=paused,
                             copies_disks=copies_disks)
    return set(flags.names(value))


class TestVocabulary(testtools.TestCase):

    def test_fallback_table_equals_libvirt_python(self):
        table = flags.libvirt_flag_table()
        if table is None:
            self.skipTest('libvirt-python is not installed')
        # Every flag this libvirt-python knows must be in the table with the
        # same value; a newer libvirt adding a flag makes this fail.
        self.assertEqual(table, {k: v for k, v in flags.FLAG_TABLE.items()
                                 if k in table})
        self.assertLessEqual(set(table), set(flags.FLAG_TABLE))

    def test_values_are_distinct_bits(self):
        values = list(flags.FLAG_TABLE.values())
        self.assertEqual(len(values), len(set(values)))
        for value in values:
            self.assertEqual(1, bin(value).count('1'))

    def test_parse_forms(self):
        self.assertEqual(3, flags.parse('LIVE|PEER2PEER'))
        self.assertEqual(
            3, flags.parse('VIR_MIGRATE_LIVE|vir_migrate_peer2peer'))
        self.assertEqual(3, flags.parse('live, peer2peer'))
        self.assertEqual(0x80, flags.parse('0x80'))
        self.assertEqual(139, flags.parse('139'))
        self.assertEqual(139, flags.parse(139))

    def test_round_trip(self):
        for value in (0, 1, 0x8b, 0x1fffff):
            self.assertEqual(value, flags.parse(flags.to_text(value))
                             if value else 0)

    def test_names_in_bit_order(self):
        self.assertEqual(['LIVE', 'PEER2PEER', 'PERSIST_DEST',
                          'NON_SHARED_INC'], flags.names(0x8b))

    def test_bad_input(self):
        for text in ('FOO', 'LIVE|', '-5', '', '0x800000', 'LIVE|BOGUS'):
            self.assertRaises(flags.FlagError, flags.parse, text)
        self.assertRaises(flags.FlagError, flags.names, -1)


class TestNovaPolicy(testtools.TestCase):

    def test_default_sets(self):
        self.assertEqual(BASE, nova())
        self.assertEqual(BASE | {'NON_SHARED_INC'}, nova(block=True))

    def test_each_option_adds_its_flag(self):
        self.assertEqual(BASE | {'TUNNELLED'},
                         nova(live_migration_tunnelled=True))
        self.assertEqual(BASE | {'TLS'},
                         nova(live_migration_with_native_tls=True))
        self.assertEqual(BASE | {'POSTCOPY'},
                         nova(live_migration_permit_post_copy=True))
        self.assertEqual(BASE | {'AUTO_CONVERGE'},
                         nova(live_migration_permit_auto_converge=True))
        self.assertEqual(BASE | {'PARALLEL'},
                         nova(live_migration_parallel_connections=4))
        self.assertEqual(BASE, nova(live_migration_parallel_connections=1))

    def test_tunnelled_with_native_tls_is_refused(self):
        error = self.assertRaises(
            flags.NovaRefusal, nova, live_migration_tunnelled=True,
            live_migration_with_native_tls=True)
        self.assertIn("Setting both 'live_migration_tunnelled' and "
                      "'live_migration_with_native_tls'", str(error))

    def test_auto_converge_only_without_post_copy(self):
        both = nova(live_migration_permit_post_copy=True,
                    live_migration_permit_auto_converge=True)
        self.assertIn('POSTCOPY', both)
        self.assertNotIn('AUTO_CONVERGE', both)

    def test_post_copy_dropped_for_paused_guest(self):
        self.assertEqual(BASE, nova(paused=True,
                                    live_migration_permit_post_copy=True))

    def test_inc_cleared_when_no_disk_is_copied(self):
        self.assertEqual(BASE, nova(block=True, copies_disks=False))

    def test_tunnelled_block_migration_copies_nothing(self):
        # migrate_disks is dropped when tunnelled, and with it NON_SHARED_INC.
        self.assertEqual(BASE | {'TUNNELLED'},
                         nova(block=True, live_migration_tunnelled=True))

    def test_never_non_shared_disk(self):
        for block in (False, True):
            self.assertNotIn('NON_SHARED_DISK', nova(block=block))

    def test_bad_parallel(self):
        self.assertRaises(flags.NovaRefusal, nova,
                          live_migration_parallel_connections=0)
