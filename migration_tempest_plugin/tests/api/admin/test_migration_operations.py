"""Acting on a running live migration: abort (2.24) and force-complete
(2.22), with and without post-copy.

A migration of the small integrity guest ends in seconds, too soon to act
on; these classes cap nova's live_migration_bandwidth at [migration]
slow_migration_bandwidth MiB/s on both computes so that it runs long
enough, while the guest keeps dirtying memory and disk.

What nova's libvirt driver does with a force-complete (nova 34,
nova/virt/libvirt/migration.py run_tasks): the request is queued for the
migration's monitor, which acts on it while libvirt reports the job
running.  Without post-copy it pauses the guest on the source
(virDomainSuspend in the source's libvirtd log), so that the copy
converges; with post-copy permitted it asks libvirt to switch
(virDomainMigrateStartPostCopy), and when QEMU refuses, nova logs a
warning and does nothing else (trigger_postcopy_switch).
"""

from tempest.common import waiters
from tempest import config
from tempest.lib.common.utils import test_utils
from tempest.lib import decorators
from tempest.lib import exceptions as lib_exc

from migration_tempest_plugin import flags
from migration_tempest_plugin.hosts import libvirt_log
from migration_tempest_plugin import storage_modes
from migration_tempest_plugin.tests import base

CONF = config.CONF

# QEMU's answer to a switch to post-copy while libvirt still copies disks
# (libvirt 9.0 with QEMU 7.2, seen in the lab).
POSTCOPY_TOO_EARLY = ('Postcopy must be started after migration has been '
                      'started')
# Seconds that nova's monitor (a round every 0.5 s, progress saved every
# 5 s) is given to act on a force-complete before the test looks at what
# it did.
FORCE_COMPLETE_GRACE = 30
# The known finding ([migration] known_bugs, README "Known findings").
FORCE_COMPLETE_IGNORED = 'force-complete-ignored-in-disk-copy'
NOVA_POSTCOPY_REFUSAL_IGNORED = (
    'nova 34 answered the force-complete with 202; QEMU refused the switch '
    'to post-copy while the disks were being copied, and nova only logged '
    'a warning (nova/virt/libvirt/migration.py trigger_postcopy_switch): '
    'it neither retried the switch once the memory copy started nor paused '
    'the guest, and did not tell the caller; the migration ran on as if '
    'never forced.  No launchpad bug reference was found.')


class LiveMigrationAbortTest(base.MigrationIntegrityTestBase):

    capped_bandwidth = True

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('2a3857a8-9c1f-478d-9c5a-5fcd3b2b1494')
    def test_abort_keeps_guest_on_source(self):
        """An aborted migration leaves the guest running on its source with
        every write, and nothing of it on the destination; the next live
        migration of the guest completes, intact."""
        server, recorder = self.create_integrity_server()
        self.start_live_migration(server['id'], self.dest)
        migration = self.wait_for_running_migration(server['id'])
        self.live_migrations.abort_live_migration(server['id'],
                                                  migration['id'])
        ended = self.wait_for_migration_end(server['id'])
        self.assertNotEqual('completed', ended['status'])
        self.assertTrue(libvirt_log.domain_calls(
            self.libvirtd_log(self.source, server['id']),
            'virDomainAbortJob', server['id']),
            'no virDomainAbortJob for %s on %s' % (server['id'], self.source))
        self.assert_back_on_source(server['id'], self.source, self.dest,
                                   'canceled by client')
        self.keep_writing(recorder)
        self.assert_intact(server['id'], recorder, self.source)
        # What the abort left behind (a half-made destination, a job still
        # held by libvirt) must not block the next try.  The guest is
        # paused (assert_intact), so the move converges under the cap.
        self.live_migrate(server['id'], self.dest, state='PAUSED')
        self.unpause(server['id'])
        self.keep_writing(recorder)
        self.assert_intact(server['id'], recorder, self.dest)


class LiveMigrationForceCompleteTest(base.MigrationIntegrityTestBase):

    capped_bandwidth = True

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('7e9b6cd5-0fe4-4709-a0de-1194a672f745')
    def test_force_complete_keeps_acknowledged_writes(self):
        """Without post-copy, force-complete pauses the guest on the source
        (virDomainSuspend in its libvirtd log after the call: the
        migration was forced, it did not merely finish), so that the copy
        converges; it ends running on the destination, intact."""
        server, recorder = self.create_integrity_server()
        self.start_live_migration(server['id'], self.dest)
        migration = self.wait_for_running_migration(server['id'])
        mark = self.hosts[self.source].libvirtd_log_size()
        self.live_migrations.force_complete_live_migration(server['id'],
                                                           migration['id'])
        ended = self.wait_for_migration_end(server['id'])
        self.assertEqual('completed', ended['status'])
        forced = libvirt_log.domain_calls(
            self.hosts[self.source].libvirtd_log_since(mark),
            'virDomainSuspend', server['id'])
        self.assertTrue(forced, 'libvirtd on %s logged no virDomainSuspend '
                        'of %s after the force-complete: nothing shows that '
                        'the migration was forced' % (self.source,
                                                      server['id']))
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
        while its memory is fetched from the source: QEMU on the source
        reports postcopy-active); no write is lost."""
        if not storage_modes.shared_disks(CONF.migration.storage):
            raise self.skipException(
                'needs instance disks that nova counts as shared '
                '([migration] storage = nfs or rbd): a block migration copies '
                'the disk before any memory, and QEMU refuses the switch '
                'until then (test_force_complete_during_disk_copy_'
                'keeps_acknowledged_writes)')
        server, recorder = self.create_integrity_server()
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
        log = self.libvirtd_log(self.source, server['id'])
        asked = libvirt_log.domain_calls(
            log, 'virDomainMigrateStartPostCopy', server['id'])
        self.assertTrue(asked, 'nova never asked libvirt to switch the '
                        'migration of %s to post-copy' % server['id'])
        self.assertEqual([], libvirt_log.errors_after(
            log, asked[0], 'migrate-start-postcopy'),
            'QEMU refused the switch to post-copy')
        self.assertIn('postcopy-active',
                      libvirt_log.migration_statuses(log, asked[0]),
                      'QEMU on %s never reported the migration of %s in '
                      'post-copy: it ended in pre-copy' % (self.source,
                                                           server['id']))
        self.keep_writing(recorder)
        self.assert_intact(server['id'], recorder, self.dest)

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('7f802d69-c636-492c-b417-6b4a6e8fc09d')
    def test_force_complete_during_disk_copy_keeps_acknowledged_writes(self):
        """A force-complete while a block migration copies the disk (which
        a writing guest keeps from converging under the bandwidth cap),
        with post-copy permitted: the migration ends, completed on the
        destination, within FORCE_COMPLETE_GRACE; nova says where the guest
        runs and it runs there, and every acknowledged write is on its
        disk.

        What nova did in between is recorded: its answer, whether it asked
        for post-copy, QEMU's refusal in the source's log, whether it
        paused the guest, whether the migration ran on.  nova 34 answers
        202, QEMU refuses ("Postcopy must be started after migration has
        been started") and nova does nothing more
        (NOVA_POSTCOPY_REFUSAL_IGNORED): the known finding
        FORCE_COMPLETE_IGNORED.  Without its name in [migration]
        known_bugs, a migration that has not ended by then fails the test;
        with it, the test aborts the migration, as an operator would, and
        checks the rollback and the data.
        """
        if storage_modes.shared_disks(CONF.migration.storage):
            raise self.skipException('needs local instance disks '
                                     '([migration] storage = local: a disk '
                                     'copy)')
        server, recorder = self.create_integrity_server()
        source, dest = self.source, self.dest
        self.start_live_migration(server['id'], dest)
        migration = self.wait_for_running_migration(server['id'],
                                                    copying='disk')
        mark = self.hosts[source].libvirtd_log_size()
        response = self.live_migrations.force_complete_live_migration(
            server['id'], migration['id'])
        ended_by_itself = test_utils.call_until_true(
            lambda: self.migration_ended(server['id']) is not None,
            FORCE_COMPLETE_GRACE, 2)
        after_grace = self.migrations(server['id'])[-1]
        # One read of the source's log since the call.
        log = self.hosts[source].libvirtd_log_since(mark)
        post_copy_asked = bool(libvirt_log.domain_calls(
            log, 'virDomainMigrateStartPostCopy', server['id']))
        refusals = libvirt_log.errors_after(log, 0, POSTCOPY_TOO_EARLY)
        paused = bool(libvirt_log.domain_calls(log, 'virDomainSuspend',
                                               server['id']))
        switched = after_grace['status'] == 'running (post-copy)'
        behaviour = {
            'force_complete_response': response.response.status,
            'migration_at_force_complete': migration,
            'post_copy_requested': post_copy_asked,
            'qemu_refusals': refusals[:3],
            'guest_paused_by_nova': paused,
            'grace_s': FORCE_COMPLETE_GRACE,
            'ended_within_grace': ended_by_itself,
            'migration_after_grace': after_grace,
            'aborted_by_test': False,
        }
        if not ended_by_itself and not (paused or switched):
            # Nothing that nova did will end this migration.
            self.record_nova_behaviour(FORCE_COMPLETE_IGNORED, server['id'],
                                       behaviour)
            self.assertIn(FORCE_COMPLETE_IGNORED, CONF.migration.known_bugs,
                          'the force-complete of %s did not end its '
                          'migration within %ds (a cloud known to ignore it '
                          'names %s in [migration] known_bugs)' % (
                              server['id'], FORCE_COMPLETE_GRACE,
                              FORCE_COMPLETE_IGNORED))
            behaviour['aborted_by_test'] = True
            try:
                self.live_migrations.abort_live_migration(server['id'],
                                                          migration['id'])
            except (lib_exc.BadRequest, lib_exc.Conflict) as exc:
                # It ended, or switched, between the look and the abort.
                behaviour['abort_refused'] = str(exc)
        ended = self.wait_for_migration_end(server['id'])
        behaviour['outcome'] = ended['status']
        if refusals and not paused and behaviour['aborted_by_test']:
            behaviour['nova_bug'] = NOVA_POSTCOPY_REFUSAL_IGNORED
        self.record_nova_behaviour('force-complete-during-disk-copy',
                                   server['id'], behaviour)
        if ended['status'] == 'completed':
            waiters.wait_for_server_status(self.servers, server['id'],
                                           'ACTIVE')
            self.assertEqual(dest, self.get_host_for_server(server['id']))
            self.assertEqual('running',
                             self.hosts[dest].domain_state(server['id']))
            self.assertFalse(self.hosts[source].has_domain(server['id']),
                             'a domain of %s was left on its source %s' % (
                                 server['id'], source))
            where = dest
        else:
            self.assertTrue(behaviour['aborted_by_test'],
                            'the forced migration of %s ended %s' % (
                                server['id'], ended['status']))
            self.assert_back_on_source(
                server['id'], source, dest,
                'canceled by client' if 'abort_refused' not in behaviour
                else None)
            where = source
        self.keep_writing(recorder)
        self.assert_intact(server['id'], recorder, where)
