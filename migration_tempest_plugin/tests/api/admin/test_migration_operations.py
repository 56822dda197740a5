"""Acting on a running live migration: abort (2.24) and force-complete
(2.22), with and without post-copy.

A migration of the small integrity guest ends in seconds, too soon to act
on; these classes cap nova's live_migration_bandwidth at [migration]
slow_migration_bandwidth MiB/s on both computes so that it runs long
enough, while the guest keeps dirtying memory and disk.
"""

from tempest.common import waiters
from tempest import config
from tempest.lib.common.utils import test_utils
from tempest.lib import decorators

from migration_tempest_plugin import flags
from migration_tempest_plugin.hosts import libvirt_log
from migration_tempest_plugin.tests import base

CONF = config.CONF


class LiveMigrationAbortTest(base.MigrationIntegrityTestBase):

    capped_bandwidth = True

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('2a3857a8-9c1f-478d-9c5a-5fcd3b2b1494')
    def test_abort_keeps_guest_on_source(self):
        """An aborted migration leaves the guest running on its source with
        every write, and nothing of it on the destination."""
        server, recorder = self.create_integrity_server(self.source)
        self.start_live_migration(server['id'], self.dest)
        migration = self.wait_for_running_migration(server['id'])
        self.live_migrations.abort_live_migration(server['id'],
                                                  migration['id'])
        ended = self.wait_for_migration_end(server['id'])
        self.assertNotEqual('completed', ended['status'])
        self.assertTrue(libvirt_log.domain_calls(
            self.source_log(self.source), 'virDomainAbortJob', server['id']),
            'no virDomainAbortJob for %s on %s' % (server['id'], self.source))
        self.assert_back_on_source(server['id'], self.source, self.dest,
                                   'canceled by client')
        self.keep_writing(recorder)
        self.assert_intact(server['id'], recorder, self.source)


class LiveMigrationForceCompleteTest(base.MigrationIntegrityTestBase):

    capped_bandwidth = True

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('7e9b6cd5-0fe4-4709-a0de-1194a672f745')
    def test_force_complete_keeps_acknowledged_writes(self):
        """Without post-copy, force-complete pauses the guest so that the
        copy converges; it ends running on the destination, intact."""
        server, recorder = self.create_integrity_server(self.source)
        self.start_live_migration(server['id'], self.dest)
        migration = self.wait_for_running_migration(server['id'])
        self.live_migrations.force_complete_live_migration(server['id'],
                                                           migration['id'])
        ended = self.wait_for_migration_end(server['id'])
        self.assertEqual('completed', ended['status'])
        waiters.wait_for_server_status(self.servers, server['id'], 'ACTIVE')
        self.assertEqual(self.dest, self.get_host_for_server(server['id']))
        self.audit_flags(server['id'], self.source,
                         self.expected_flags(self.block_by_storage))
        self.keep_writing(recorder)
        self.assert_intact(server['id'], recorder, self.dest)


class PostCopyForceCompleteTest(base.MigrationIntegrityTestBase):

    capped_bandwidth = True
    nova_options = {'live_migration_permit_post_copy': True}

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('9e3f7df6-3d19-4e38-b297-182f03a6f39c')
    def test_force_complete_switches_to_post_copy(self):
        """With post-copy permitted, force-complete switches a migration in
        its memory phase to post-copy (the guest runs on the destination
        while its memory is fetched from the source); no write is lost."""
        if CONF.migration.storage != 'nfs':
            raise self.skipException(
                'needs [migration] storage = nfs: a block migration copies '
                'the disk before any memory, and QEMU refuses the switch '
                'until then (test_force_complete_during_disk_copy_'
                'is_ignored)')
        server, recorder = self.create_integrity_server(self.source)
        self.start_live_migration(server['id'], self.dest)
        migration = self.wait_for_running_migration(server['id'],
                                                    copying='memory')
        self.live_migrations.force_complete_live_migration(server['id'],
                                                           migration['id'])
        ended = self.wait_for_migration_end(server['id'])
        self.assertEqual('completed', ended['status'])
        waiters.wait_for_server_status(self.servers, server['id'], 'ACTIVE')
        self.assertEqual(self.dest, self.get_host_for_server(server['id']))
        audited = self.audit_flags(server['id'], self.source,
                                   self.expected_flags(self.block_by_storage))
        self.assertTrue(flags.has(audited, 'POSTCOPY'))
        log = self.source_log(self.source)
        self.assertTrue(libvirt_log.domain_calls(
            log, 'virDomainMigrateStartPostCopy', server['id']),
            'nova never asked libvirt to switch the migration of %s to '
            'post-copy' % server['id'])
        call = libvirt_log.migrate_calls(log, server['id'])[-1]
        self.assertEqual([], libvirt_log.errors_after(
            log, call.line, 'migrate-start-postcopy'),
            'QEMU refused the switch to post-copy')
        self.keep_writing(recorder)
        self.assert_intact(server['id'], recorder, self.dest)

    @decorators.attr(type=['negative', 'multinode'])
    @decorators.idempotent_id('7f802d69-c636-492c-b417-6b4a6e8fc09d')
    def test_force_complete_during_disk_copy_is_ignored(self):
        """A block migration copies the disk first; a guest that keeps
        writing keeps that copy from converging under the bandwidth cap.
        With post-copy permitted, force-complete then asks QEMU for
        post-copy, which QEMU refuses ("Postcopy must be started after
        migration has been started"), and nova neither pauses the guest
        nor tells the caller (202, a warning in its log): the migration
        runs on.  The test observes that, aborts, and checks the guest."""
        if CONF.migration.storage != 'local':
            raise self.skipException('needs [migration] storage = local '
                                     '(a disk copy)')
        server, recorder = self.create_integrity_server(self.source)
        self.start_live_migration(server['id'], self.dest)
        migration = self.wait_for_running_migration(server['id'],
                                                    copying='disk')
        self.assertFalse(migration.get('memory_processed_bytes'),
                         'the memory copy started before the disk copy')
        self.live_migrations.force_complete_live_migration(server['id'],
                                                           migration['id'])

        def switch_refused():
            log = self.source_log(self.source)
            call = libvirt_log.migrate_calls(log, server['id'])[-1]
            return bool(libvirt_log.errors_after(
                log, call.line, 'Postcopy must be started after migration '
                'has been started'))

        self.assertTrue(test_utils.call_until_true(switch_refused, 60, 2),
                        'QEMU did not refuse the early post-copy switch')
        # nova's monitor runs every live_migration_monitor_interval (5 s):
        # a switch or a pause would show within a few of them.
        test_utils.call_until_true(
            lambda: self.migrations(server['id'])[-1]['status'] != 'running',
            20, 2)
        self.assertEqual('running',
                         self.migrations(server['id'])[-1]['status'],
                         'force-complete did end the migration after all')
        self.live_migrations.abort_live_migration(server['id'],
                                                  migration['id'])
        ended = self.wait_for_migration_end(server['id'])
        self.assertNotEqual('completed', ended['status'])
        self.assert_back_on_source(server['id'], self.source, self.dest,
                                   'canceled by client')
        self.keep_writing(recorder)
        self.assert_intact(server['id'], recorder, self.source)
