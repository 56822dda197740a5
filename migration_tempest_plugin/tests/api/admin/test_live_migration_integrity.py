"""Live and block migration through nova with nova's configuration as the
cloud runs it: every acknowledged guest write survives, and nova hands
libvirt the flags its policy promises."""

from tempest.common import waiters
from tempest import config
from tempest.lib import decorators
from tempest.lib import exceptions as lib_exc

from migration_tempest_plugin.hosts import libvirt_log
from migration_tempest_plugin import storage_modes
from migration_tempest_plugin.tests import base

CONF = config.CONF

# nova's pre-check messages (nova/exception.py and the libvirt driver).
BLOCK_ON_SHARED = 'Block migration can not be used with shared storage.'
LIVE_WITHOUT_SHARED = ('Shared storage live-migration requires either shared '
                       'storage or boot-from-volume with no local disks.')


class LiveMigrationIntegrityTest(base.MigrationIntegrityTestBase):
    """One writing guest per test, moved between the two computes."""

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('5b0f6a43-3b1e-4f8e-9a55-2f0d3c7b8e61')
    def test_auto_live_migration_keeps_acknowledged_writes(self):
        """block_migration=auto: nova copies the disk on local storage and
        not on shared storage; no acknowledged write is lost either way."""
        server, recorder = self.create_integrity_server()
        self.live_migrate(server['id'], self.dest, 'auto')
        self.audit_flags(server['id'], self.source,
                         self.expected_flags(self.block_by_storage))
        self.keep_writing(recorder)
        self.assert_intact(server['id'], recorder, self.dest)

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('fd0db4a8-d8be-4b8c-b0c1-4e6924d91c7a')
    def test_block_migration_keeps_acknowledged_writes(self):
        """block_migration=true on local storage: the disk is copied
        (NON_SHARED_INC) while the guest writes."""
        if storage_modes.shared_disks(CONF.migration.storage):
            raise self.skipException(
                'a block migration needs local instance disks; nova refuses '
                'it on [migration] storage = %s, whose disks it counts as '
                'shared' % CONF.migration.storage)
        server, recorder = self.create_integrity_server()
        self.live_migrate(server['id'], self.dest, True)
        self.audit_flags(server['id'], self.source,
                         self.expected_flags(True))
        self.keep_writing(recorder)
        self.assert_intact(server['id'], recorder, self.dest)

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('254e84d5-ff15-4a52-a519-73a38cf3f0a7')
    def test_paused_guest_migrates_intact(self):
        """A paused guest moves (nova drops POSTCOPY for it), is unpaused
        on the destination and goes on writing."""
        server, recorder = self.create_integrity_server()
        self.pause(server['id'])
        self.live_migrate(server['id'], self.dest, 'auto', state='PAUSED')
        self.audit_flags(server['id'], self.source, self.expected_flags(
            self.block_by_storage, paused=True))
        self.unpause(server['id'])
        self.keep_writing(recorder)
        self.assert_intact(server['id'], recorder, self.dest)

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('c67fb67d-7125-48fc-910b-fbf1ee604f1a')
    def test_there_and_back_again_keeps_acknowledged_writes(self):
        """A to B, writes on B, B to A, writes on A.  Each leg's migrate
        call is audited in the libvirtd log of that leg's source, and the
        disk is checked after each leg on the host the guest then runs on
        (paused for the read, unpaused after the first): the copy on B
        cannot be read once the guest has left it, since on local storage
        nova deletes the instance files of the host a guest leaves."""
        server, recorder = self.create_integrity_server()
        there, back = self.dest, self.source
        expected = self.expected_flags(self.block_by_storage)
        self.live_migrate(server['id'], there, 'auto')
        self.audit_flags(server['id'], back, expected, name='flags-there')
        self.keep_writing(recorder)
        self.assert_intact(server['id'], recorder, there, name='check-there')
        self.unpause(server['id'])
        self.keep_writing(recorder)
        self.live_migrate(server['id'], back, 'auto')
        self.audit_flags(server['id'], there, expected, name='flags-back')
        self.keep_writing(recorder)
        self.assert_intact(server['id'], recorder, back, name='check-back')


class SynchronousPreCheckRefusalTest(base.MigrationIntegrityTestBase):
    """Migrations that nova must refuse.  Before microversion 2.34 the
    live-migration pre-checks answer the API call itself, so the refusal
    and its message come back as a 400."""

    min_microversion = '2.30'
    max_microversion = '2.33'
    migrates = False

    def _assert_refused(self, block_migration, message):
        server, recorder = self.create_integrity_server()
        source, dest = self.source, self.dest
        # The 2.30 schema: host, block_migration and force (2.25 removed
        # disk_over_commit).  force: without it the conductor asks the
        # scheduler, skips a destination whose pre-checks fail, and answers
        # "No valid host was found" instead of nova's reason.
        error = self.assertRaises(
            lib_exc.BadRequest, self.admin_servers.live_migrate_server,
            server['id'], host=dest, block_migration=block_migration,
            force=True)
        self.assertIn(message, str(error))
        waiters.wait_for_server_status(self.servers, server['id'], 'ACTIVE')
        self.assertEqual(source, self.get_host_for_server(server['id']))
        self.assertFalse(self.hosts[dest].has_domain(server['id']),
                         'the refused migration left a domain on %s' % dest)
        self.keep_writing(recorder)
        self.assert_intact(server['id'], recorder, source)

    @decorators.attr(type=['negative', 'multinode'])
    @decorators.idempotent_id('a1f3e9c2-6d0b-4c57-8f3e-7b2d9e4c1a08')
    def test_block_migration_refused_on_shared_storage(self):
        """The seed's unsafe case through nova's front door: a block
        migration on shared storage would copy the disk over itself; nova
        must refuse it and the guest must keep every write."""
        if not storage_modes.shared_disks(CONF.migration.storage):
            raise self.skipException('needs instance disks that nova counts '
                                     'as shared ([migration] storage = nfs '
                                     'or rbd)')
        self._assert_refused(True, BLOCK_ON_SHARED)

    @decorators.attr(type=['negative', 'multinode'])
    @decorators.idempotent_id('41500ccc-f604-4715-b8ae-c1d5736e6b8b')
    def test_live_migration_without_shared_storage_refused(self):
        """block_migration=false on local storage: the destination has no
        disk, so nova must refuse before libvirt is asked."""
        if storage_modes.shared_disks(CONF.migration.storage):
            raise self.skipException('needs local instance disks '
                                     '([migration] storage = local)')
        self._assert_refused(False, LIVE_WITHOUT_SHARED)


class ScheduledPreCheckRefusalTest(base.MigrationIntegrityTestBase):
    """The same refusals through today's front door (the class's
    microversion, 2.74): the API accepts the call (202), and since 2.68 a
    named host is the scheduler's requested destination.  The conductor
    runs the pre-checks on it, skips it when they fail, finds no other
    host (NoValidHost), fails its event of the action and ends the
    migration record in error; libvirt is never asked to migrate.  The
    pre-check's own reason reaches only the conductor's debug log
    ("Skipping host"), so the reason is asserted by
    SynchronousPreCheckRefusalTest."""

    migrates = False

    def _conductor_event(self, server_id):
        """The conductor's event of the server's latest live-migration
        action (admin: with its traceback)."""
        actions = [a for a in self.admin_servers.list_instance_actions(
            server_id)['instanceActions'] if a['action'] == 'live-migration']
        self.assertNotEqual([], actions, 'no live-migration action of %s'
                            % server_id)
        latest = max(actions, key=lambda a: a['start_time'])
        events = self.admin_servers.show_instance_action(
            server_id, latest['request_id'])['instanceAction']['events']
        for event in events:
            if event['event'] == 'conductor_live_migrate_instance':
                return event
        self.fail('no conductor_live_migrate_instance event in %s' % events)

    def _assert_refused(self, block_migration):
        server, recorder = self.create_integrity_server()
        source, dest = self.source, self.dest
        self.start_live_migration(server['id'], dest, block_migration)
        ended = self.wait_for_migration_end(server['id'])
        self.assertEqual('error', ended['status'])
        event = self._conductor_event(server['id'])
        self.save_report('refusal', server['id'], {
            'migration': ended, 'event': event})
        # The traceback (admin) ends above the exception's own line, so
        # only the result says that the conductor failed.
        self.assertEqual('Error', event['result'])
        waiters.wait_for_server_status(self.servers, server['id'], 'ACTIVE')
        self.assertEqual(source, self.get_host_for_server(server['id']))
        self.assertEqual([], libvirt_log.migrate_calls(
            self.libvirtd_log(source, server['id']), server['id']),
            'libvirt on %s was asked to migrate %s' % (source, server['id']))
        self.assertFalse(self.hosts[dest].has_domain(server['id']),
                         'the refused migration left a domain on %s' % dest)
        self.keep_writing(recorder)
        self.assert_intact(server['id'], recorder, source)

    @decorators.attr(type=['negative', 'multinode'])
    @decorators.idempotent_id('0d6f3c1e-5a47-4b8e-9e2c-71f0a4d8b5c3')
    def test_block_migration_refused_by_scheduler_on_shared_storage(self):
        """The seed's unsafe case (a block migration on shared storage
        would copy the disk over itself) as a user asks it today: nova
        refuses it before libvirt is asked, and the guest keeps every
        write."""
        if not storage_modes.shared_disks(CONF.migration.storage):
            raise self.skipException('needs instance disks that nova counts '
                                     'as shared ([migration] storage = nfs '
                                     'or rbd)')
        self._assert_refused(True)

    @decorators.attr(type=['negative', 'multinode'])
    @decorators.idempotent_id('b8e25a7d-3c61-4f09-a4d2-6e9c0f1b7a54')
    def test_live_migration_without_shared_storage_refused_by_scheduler(
            self):
        """block_migration=false on local storage as a user asks it today:
        nova refuses it before libvirt is asked, and the guest keeps every
        write."""
        if storage_modes.shared_disks(CONF.migration.storage):
            raise self.skipException('needs local instance disks '
                                     '([migration] storage = local)')
        self._assert_refused(False)
