"""Acting on a running live migration: abort (2.24) and force-complete
(2.22), with and without post-copy.

A migration of the small integrity guest ends in seconds, too soon to act
on; these classes cap nova's live_migration_bandwidth at [migration]
slow_migration_bandwidth MiB/s on both computes so that it runs long
enough, while the guest keeps dirtying memory and disk.
"""

from tempest.common import waiters
from tempest import config
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
        """With post-copy permitted, force-complete switches the running
        migration to post-copy (the guest runs on the destination while its
        memory is fetched from the source); no write is lost."""
        server, recorder = self.create_integrity_server(self.source)
        self.start_live_migration(server['id'], self.dest)
        migration = self.wait_for_running_migration(server['id'])
        self.live_migrations.force_complete_live_migration(server['id'],
                                                           migration['id'])
        ended = self.wait_for_migration_end(server['id'])
        self.assertEqual('completed', ended['status'])
        waiters.wait_for_server_status(self.servers, server['id'], 'ACTIVE')
        self.assertEqual(self.dest, self.get_host_for_server(server['id']))
        audited = self.audit_flags(server['id'], self.source,
                                   self.expected_flags(self.block_by_storage))
        self.assertTrue(flags.has(audited, 'POSTCOPY'))
        self.assertTrue(libvirt_log.domain_calls(
            self.source_log(self.source), 'virDomainMigrateStartPostCopy',
            server['id']), 'nova never switched the migration of %s to '
            'post-copy' % server['id'])
        self.keep_writing(recorder)
        self.assert_intact(server['id'], recorder, self.dest)
