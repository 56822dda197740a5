import os

import testtools

from migration_tempest_plugin.hosts import libvirt_log

UUID = '0b5e2b8e-8f4b-4d6e-9c1e-2a7a3e1f9c11'
OTHER = '11111111-2222-3333-4444-555555555555'

# Shaped like libvirtd 9.0's debug log of the public API.
with open(os.path.join(os.path.dirname(__file__), 'fixtures',
                       'libvirtd-migrate.log')) as f:
    LOG = f.read()


class TestMigrateCalls(testtools.TestCase):

    def test_finds_the_instance_call_and_its_flags(self):
        calls = libvirt_log.migrate_calls(LOG, UUID)
        self.assertEqual(1, len(calls))
        call = calls[0]
        self.assertEqual('virDomainMigratePerform3Params', call.api)
        self.assertEqual('qemu+tcp://compute2/system', call.dest_uri)
        self.assertEqual(['LIVE', 'PEER2PEER', 'PERSIST_DEST',
                          'UNDEFINE_SOURCE', 'NON_SHARED_INC'], call.names)
        self.assertEqual(4, call.line)

    def test_all_calls_in_order(self):
        calls = libvirt_log.migrate_calls(LOG)
        self.assertEqual([OTHER, UUID], [c.uuid for c in calls])
        self.assertEqual([0x1b, 0x9b], [c.flags for c in calls])

    def test_no_call(self):
        self.assertEqual(
            [], libvirt_log.migrate_calls(LOG, 'f' * 8 + UUID[8:]))
        self.assertEqual([], libvirt_log.migrate_calls(''))


class TestDomainCalls(testtools.TestCase):

    def test_finds_a_post_copy_switch_of_one_domain(self):
        text = LOG + (
            '2026-11-26 18:00:09.000+0000: 821: debug : '
            'virDomainMigrateStartPostCopy:9120 : dom=0x7f01, (VM: '
            'name=instance-00000001, uuid=%s), flags=0x0\n' % UUID)
        self.assertEqual([6], libvirt_log.domain_calls(
            text, 'virDomainMigrateStartPostCopy', UUID))
        self.assertEqual([], libvirt_log.domain_calls(
            text, 'virDomainMigrateStartPostCopy', OTHER))

    def test_other_apis_do_not_count(self):
        self.assertEqual([], libvirt_log.domain_calls(
            LOG, 'virDomainMigrateStartPostCopy', UUID))
        self.assertEqual([4], libvirt_log.domain_calls(
            LOG, 'virDomainMigratePerform3Params', UUID))


class TestErrorsAfter(testtools.TestCase):

    def test_only_errors_after_the_call_with_the_text(self):
        text = LOG + (
            '2026-11-26 18:00:03.000+0000: 821: error : '
            'qemuMigrationSrcIsSafe:1629 : Unsafe migration: Migration '
            'without shared storage is unsafe\n'
            '2026-11-26 18:00:03.100+0000: 821: debug : virFoo:1 : '
            'Unsafe migration mentioned at debug level\n')
        call = libvirt_log.migrate_calls(text, UUID)[-1]
        found = libvirt_log.errors_after(text, call.line, 'Unsafe migration')
        self.assertEqual(1, len(found))
        self.assertIn('qemuMigrationSrcIsSafe', found[0])
        self.assertEqual([], libvirt_log.errors_after(text, 6,
                                                      'Unsafe migration'))

    def test_all_errors_without_a_needle(self):
        text = LOG + (
            '2026-11-26 18:00:03.000+0000: 821: error : '
            'qemuMigrationJobCheckStatus:1770 : operation aborted: migration '
            'out job: canceled by client\n')
        call = libvirt_log.migrate_calls(text, UUID)[-1]
        self.assertEqual(1, len(libvirt_log.errors_after(text, call.line)))
        self.assertEqual([], libvirt_log.errors_after(LOG, call.line))


class TestReadFromAnOffset(testtools.TestCase):
    """What the audits see: the log since an offset taken before the
    migration, in which an older migration of the same server is gone."""

    def test_an_earlier_migration_is_not_seen(self):
        later = (
            '2026-11-26 18:10:00.000+0000: 821: debug : '
            'virDomainMigratePerform3Params:5378 : dom=0x7f02, (VM: '
            'name=instance-00000001, uuid=%s), dconnuri=qemu+tcp://compute1'
            '/system, params=0x57, nparams=3, flags=0x8b\n'
            '2026-11-26 18:10:01.000+0000: 821: debug : virDomainSuspend:'
            '1783 : dom=0x7f02, (VM: name=instance-00000001, uuid=%s)\n'
            % (UUID, UUID))
        whole = LOG + later
        since = whole.encode()[len(LOG.encode()):].decode()
        calls = libvirt_log.migrate_calls(since, UUID)
        self.assertEqual([(0x8b, 1)], [(c.flags, c.line) for c in calls])
        self.assertEqual([2], libvirt_log.domain_calls(
            since, 'virDomainSuspend', UUID))
        self.assertEqual(2, len(libvirt_log.migrate_calls(whole, UUID)))
