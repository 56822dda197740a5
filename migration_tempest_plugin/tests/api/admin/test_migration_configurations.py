"""Each of nova's [libvirt] live migration options, one class each: both
computes run with the option set (NovaComputeConfig), a writing guest is
live-migrated with block_migration=auto, and the flags in the source's
libvirtd log must be nova's policy for that configuration."""

from tempest import config
from tempest.lib import decorators

from migration_tempest_plugin.hosts import libvirt_log
from migration_tempest_plugin import storage_modes
from migration_tempest_plugin.tests import base

CONF = config.CONF


class _ConfigurationTestBase(base.MigrationIntegrityTestBase):

    def _assert_migrates_intact(self):
        """Live-migrate a writing guest, audit nova's flags and the data;
        return (the source's libvirtd log since, its migrate call)."""
        server, recorder = self.create_integrity_server()
        self.live_migrate(server['id'], self.dest, 'auto')
        self.audit_flags(server['id'], self.source,
                         self.expected_flags(self.block_by_storage))
        self.keep_writing(recorder)
        self.assert_intact(server['id'], recorder, self.dest)
        log = self.libvirtd_log(self.source, server['id'])
        return log, libvirt_log.migrate_calls(log, server['id'])[-1]


class TunnelledLiveMigrationTest(_ConfigurationTestBase):

    nova_options = {'live_migration_tunnelled': True}

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('375a1f01-7ea4-48a9-b90d-982f3116b8c4')
    def test_tunnelled_live_migration_keeps_acknowledged_writes(self):
        """On shared storage a tunnelled migration copies only memory."""
        if not storage_modes.shared_disks(CONF.migration.storage):
            raise self.skipException('needs instance disks that nova counts '
                                     'as shared ([migration] storage = nfs '
                                     'or rbd); on local storage nova cannot '
                                     'tunnel a block migration')
        self._assert_migrates_intact()

    @decorators.attr(type=['negative', 'multinode'])
    @decorators.idempotent_id('a51d9e53-7603-4514-8d41-060b7a72765b')
    def test_tunnelled_block_migration_fails_and_rolls_back(self):
        """nova sends no migrate_disks when tunnelled (bug #1398999) and so
        clears NON_SHARED_INC: libvirt refuses a migration that would leave
        the local disk behind ("Unsafe migration"), nova rolls back, and
        the guest runs on at its source with every write.  What nova then
        does with the instance's status is recorded (assert_back_on_source).
        """
        if storage_modes.shared_disks(CONF.migration.storage):
            raise self.skipException('needs local instance disks '
                                     '([migration] storage = local)')
        server, recorder = self.create_integrity_server()
        self.start_live_migration(server['id'], self.dest, 'auto')
        ended = self.wait_for_migration_end(server['id'])
        self.assertIn(ended['status'], ('error', 'failed'))
        self.audit_flags(server['id'], self.source, self.expected_flags(True))
        self.assert_back_on_source(server['id'], self.source, self.dest,
                                   'Unsafe migration')
        self.keep_writing(recorder)
        self.assert_intact(server['id'], recorder, self.source)


class NativeTLSLiveMigrationTest(_ConfigurationTestBase):

    nova_options = {'live_migration_with_native_tls': True}

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('379eeae6-4769-4c29-880c-d99456046f4f')
    def test_native_tls_live_migration_keeps_acknowledged_writes(self):
        """Memory and, on local storage, the disk (NBD) go over QEMU's own
        TLS, with the certificates the compute hosts were given."""
        self._assert_migrates_intact()


class PostCopyPermittedLiveMigrationTest(_ConfigurationTestBase):

    nova_options = {'live_migration_permit_post_copy': True}

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('c9c01de4-e2a0-4d77-b5ee-12a60a83086a')
    def test_post_copy_permitted_live_migration_keeps_acknowledged_writes(
            self):
        """POSTCOPY is handed to libvirt; nova switches to post-copy only
        on force-complete (test_migration_operations), so this migration
        completes in pre-copy."""
        log, call = self._assert_migrates_intact()
        statuses = libvirt_log.migration_statuses(log, call.line)
        # QEMU's own end of the migration in the log, so that the absence
        # below is not that of every event.
        self.assertIn('completed', statuses,
                      'no MIGRATION event of QEMU after the migrate call')
        self.assertNotIn('postcopy-active', statuses,
                         'the migration switched to post-copy unasked')


class AutoConvergeLiveMigrationTest(_ConfigurationTestBase):

    nova_options = {'live_migration_permit_auto_converge': True}

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('0ecdfdff-9cdf-4339-a17d-ae9b5d7e81c3')
    def test_auto_converge_live_migration_keeps_acknowledged_writes(self):
        """AUTO_CONVERGE is handed to libvirt; QEMU throttles the guest
        only when the copy stalls, which this small guest may not do."""
        self._assert_migrates_intact()


class ParallelConnectionsLiveMigrationTest(_ConfigurationTestBase):

    nova_options = {'live_migration_parallel_connections': 4}

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('cb232f0f-8a81-41e2-b091-6571300d11ee')
    def test_parallel_connections_live_migration_keeps_acknowledged_writes(
            self):
        """Memory goes over four connections (PARALLEL, QEMU multifd)."""
        log, call = self._assert_migrates_intact()
        self.assertEqual(['4'], libvirt_log.call_params(log, call).get(
            'parallel.connections'), 'nova asked libvirt for another number '
            'of connections')
