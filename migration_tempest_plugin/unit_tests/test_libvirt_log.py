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


# libvirtd 9.0's debug log of a block migration with a volume at vdb (the
# lines seen in the lab, shortened), with another thread's call and
# mirror in between.
T = '2026-12-06 20:53:08.057+0000'
BLOCK_LOG = '\n'.join([
    '%s: 2928: debug : virDomainMigratePerform3Params:5378 : dom=0x5, '
    '(VM: name=instance-1, uuid=%s), dconnuri=qemu+tcp://c2/system, '
    'params=0x7, nparams=3, cookiein=(nil), flags=0x9b' % (T, UUID),
    '%s: 2928: debug : virDomainMigratePerform3Params:5382 : '
    'params["bandwidth"]=(ullong)0' % T,
    '%s: 2931: debug : virDomainMigratePerform3Params:5382 : '
    'params["migrate_disks"]=(string)vdz' % T,
    '%s: 2928: debug : virDomainMigratePerform3Params:5382 : '
    'params["migrate_uri"]=(string)tcp://c2' % T,
    '%s: 2928: debug : virDomainMigratePerform3Params:5382 : '
    'params["migrate_disks"]=(string)vda' % T,
    '%s: 2928: debug : qemuMigrationParamsFromFlags:616 : Enabling '
    'migration capability \'return-path\'' % T,
    '%s: 2928: debug : qemuMigrationSrcPerform:6226 : nmigrate_disks=1, '
    'migrate_disks=0x7f4f540b5070, flags=0x9b' % T,
    '%s: 2931: info : qemuMonitorSend:861 : QEMU_MONITOR_SEND_MSG: '
    'mon=0x9 msg={"execute":"blockdev-mirror","arguments":{"job-id":'
    '"drive-virtio-disk1","device":"libvirt-2-format","target":'
    '"migration-vdb-format","sync":"top"},"id":"libvirt-9"}' % T,
    '%s: 2928: info : qemuMonitorSend:861 : QEMU_MONITOR_SEND_MSG: '
    'mon=0x7 msg={"execute":"blockdev-mirror","arguments":{"job-id":'
    '"drive-virtio-disk0","device":"libvirt-1-format","target":'
    '"migration-vda-format","speed":33554432,"sync":"top",'
    '"auto-finalize":true,"auto-dismiss":false},"id":"libvirt-421"}' % T,
    '%s: 2928: info : qemuMonitorSend:861 : QEMU_MONITOR_SEND_MSG: '
    'mon=0x7 msg={"execute":"blockdev-mirror","arguments":{"job-id":'
    '"drive-virtio-disk0","target":"migration-vda-format"},'
    '"id":"libvirt-422"}' % T,
    '%s: 2928: debug : virDomainMigratePerform3Params:5378 : dom=0x6, '
    '(VM: name=instance-2, uuid=%s), dconnuri=qemu+tcp://c2/system, '
    'params=0x8, nparams=2, flags=0x9b' % (T, OTHER),
    '%s: 2928: info : qemuMonitorSend:861 : QEMU_MONITOR_SEND_MSG: '
    'mon=0x8 msg={"execute":"blockdev-mirror","arguments":{"target":'
    '"migration-vdc-format"}}' % T,
])


class TestCopiedDisks(testtools.TestCase):

    def call(self, uuid=UUID, text=BLOCK_LOG):
        return libvirt_log.migrate_calls(text, uuid)[-1]

    def test_migrate_disks_of_the_call_only(self):
        self.assertEqual(['vda'], libvirt_log.migrate_disks(
            BLOCK_LOG, self.call()))

    def test_every_parameter_in_order(self):
        self.assertEqual({'bandwidth': ['0'], 'migrate_uri': ['tcp://c2'],
                          'migrate_disks': ['vda']},
                         libvirt_log.call_params(BLOCK_LOG, self.call()))

    def test_a_dotted_parameter_name(self):
        lines = BLOCK_LOG.splitlines()
        text = '\n'.join(lines[:2] + [
            '%s: 2928: debug : virDomainMigratePerform3Params:5382 : '
            'params["parallel.connections"]=(int)4' % T] + lines[2:])
        self.assertEqual({'bandwidth': ['0'], 'parallel.connections': ['4'],
                          'migrate_uri': ['tcp://c2'],
                          'migrate_disks': ['vda']},
                         libvirt_log.call_params(text, self.call(text=text)))

    def test_mirrors_of_the_calls_thread_until_its_next_call(self):
        self.assertEqual(['vda'], libvirt_log.mirrored_disks(
            BLOCK_LOG, self.call()))
        self.assertEqual(['vdc'], libvirt_log.mirrored_disks(
            BLOCK_LOG, self.call(OTHER)))

    def test_no_migrate_disks_and_no_mirror(self):
        # A live migration without a disk copy (shared or volume-backed).
        text = BLOCK_LOG.splitlines()[0] + '\n' + BLOCK_LOG.splitlines()[1]
        call = self.call(text=text)
        self.assertEqual([], libvirt_log.migrate_disks(text, call))
        self.assertEqual([], libvirt_log.mirrored_disks(text, call))

    def test_drive_mirror_names_the_alias(self):
        text = '\n'.join([
            BLOCK_LOG.splitlines()[0],
            '%s: 2928: info : qemuMonitorSend:861 : QEMU_MONITOR_SEND_MSG: '
            'mon=0x7 msg={"execute":"drive-mirror","arguments":{"device":'
            '"drive-virtio-disk0","target":"nbd:c2:49153:exportname='
            'drive-virtio-disk0","sync":"full"}}' % T])
        self.assertEqual(['drive-virtio-disk0'], libvirt_log.mirrored_disks(
            text, self.call(text=text)))


class TestMigrationStatuses(testtools.TestCase):

    def event(self, status):
        return ('%s: 2604: info : qemuMonitorJSONIOProcessLine:203 : '
                'QEMU_MONITOR_RECV_EVENT: mon=0x7f10 event={"timestamp": '
                '{"seconds": 1796610863, "microseconds": 879168}, "event": '
                '"MIGRATION", "data": {"status": "%s"}}' % (T, status))

    def test_statuses_after_the_line_in_order(self):
        text = '\n'.join([self.event('setup'), BLOCK_LOG.splitlines()[0],
                          self.event('active'),
                          self.event('postcopy-active'),
                          '%s: 2604: info : qemuMonitorJSONIOProcessLine:203 '
                          ': QEMU_MONITOR_RECV_EVENT: mon=0x7f10 event={'
                          '"event": "STOP"}' % T,
                          self.event('completed')])
        self.assertEqual(['active', 'postcopy-active', 'completed'],
                         libvirt_log.migration_statuses(text, 2))

    def test_none(self):
        self.assertEqual([], libvirt_log.migration_statuses(BLOCK_LOG, 0))
