"""Base of the plugin's tempest tests: an integrity guest that writes while
nova moves it, judged by the oracle and by the flag audit."""

import dataclasses
import json
import os

from oslo_log import log as logging
from tempest.api.compute import base
from tempest.common import waiters
from tempest import config
from tempest.lib.common.utils import test_utils
from tempest.lib import exceptions as lib_exc
from testtools import content

from migration_tempest_plugin import flags
from migration_tempest_plugin.hosts import access
from migration_tempest_plugin.hosts import libvirt_log
from migration_tempest_plugin.integrity import blocks
from migration_tempest_plugin.integrity import checker
from migration_tempest_plugin import storage_modes
from migration_tempest_plugin.tests import console_log
from migration_tempest_plugin.tests import fixtures

CONF = config.CONF
LOG = logging.getLogger(__name__)

# Writes the guest acknowledges before a migration starts, and after it (on
# the destination), so that both hosts wrote what the checker reads.
ACKS_BEFORE = blocks.ACKS_BEFORE_MIGRATION
ACKS_AFTER = blocks.ACKS_AFTER_MIGRATION
# nova's statuses of a migration that is over (nova/objects/migration.py).
FINAL_MIGRATION_STATUSES = ('completed', 'error', 'failed', 'cancelled',
                            'done')
# The statuses of a live migration that nova lets an admin abort (2.65 and
# later; 2.24 to 2.64: only 'running').  Once switched to post-copy
# ('running (post-copy)') the guest runs on the destination and nova
# refuses the abort.
ABORTABLE_MIGRATION_STATUSES = ('queued', 'preparing', 'running')
# The [libvirt] options that decide the flags (and their [migration] mirror).
NOVA_OPTIONS = tuple(f.name for f in dataclasses.fields(flags.NovaOptions))

# libvirt's state of a domain whose server nova shows in a status.
DOMAIN_STATE = {'ACTIVE': 'running', 'PAUSED': 'paused'}

# What nova 34 does after it has rolled a live migration back, recorded in
# the report of each test that sees it; a known finding by this name
# ([migration] known_bugs, README "Known findings").  No launchpad bug was
# found for it.
ROLLBACK_TO_ERROR = 'rolled-back-to-error'
NOVA_ROLLBACK_TO_ERROR = (
    'nova 34 rolled the live migration back (the guest runs on its source) '
    'and then set the instance to ERROR with no instance fault: '
    'ComputeManager._do_live_migration catches the exception that '
    'LibvirtDriver._live_migration re-raises from the migration thread '
    '(future.result()) after the monitor has already called the rollback, '
    'sets the migration to error and the instance to ERROR ("too late to '
    'rollback"); it runs in a thread pool, outside the RPC method that '
    'wrap_instance_fault covers, so no fault is written.  No launchpad bug '
    'reference was found.')


# History problems that come from how the console files are written, not
# from the guest, per storage.  Writes are sequential, so the newest ACK
# proves every earlier write; each counted ACK is checked against its seq,
# and any sign of an ACK after the last counted one makes that write
# required (integrity.history: a run's evidence), so tolerating these never
# invents or forgets an acknowledged write.
#
# gap, on every storage: the source's console log goes with its instance
# folder at the end of a move, and the lines it got after the last read
# are never seen.
# order, malformed and bad-sum, on a shared instances path only (nfs; not
# rbd, whose instance folders are each host's own): the two hosts write
# the one console.log in the shared instance folder; the destination's
# QEMU starts it afresh (append off) while the source's goes on at its old
# offset, so lines of one overwrite lines of the other (seen in post-copy
# on shared storage: a well formed "seq 5335" with 1349 writes
# acknowledged, a record no guest can print).  Such records count for
# nothing; the disk is still judged on every record that is right.
# (Reading nova's console API instead added a third writer on every
# storage: each GET appends the guest's pty buffer to the same file.)
OWN_CONSOLE_ARTEFACTS = ('gap',)
SHARED_CONSOLE_ARTEFACTS = ('gap', 'order', 'malformed', 'bad-sum')


def console_artefacts(storage):
    if storage_modes.shared_instances_path(storage):
        return SHARED_CONSOLE_ARTEFACTS
    return OWN_CONSOLE_ARTEFACTS


def choose_hosts(computes, source=None, dest=None):
    """(source, dest, pinned) among `computes`, the usable compute hosts:
    `source` and `dest` as [compute] migration_source_host and
    migration_dest_host set them, the other from the rest; `pinned` when
    either was set (the guest must then start on that source)."""
    computes = sorted(computes)
    pinned = bool(source or dest)
    for role, name in (('migration_source_host', source),
                       ('migration_dest_host', dest)):
        if name and name not in computes:
            raise lib_exc.InvalidConfiguration(
                '[compute] %s = %s is not among the nova-compute services '
                'up, enabled and listed in [migration] compute_hosts_file: '
                '%s' % (role, name, ', '.join(computes) or 'none'))
    if source and source == dest:
        raise lib_exc.InvalidConfiguration(
            '[compute] migration_source_host and migration_dest_host are '
            'both %s' % source)
    if not source:
        source = next((c for c in computes if c != dest), None)
    if not dest:
        dest = next((c for c in computes if c != source), None)
    if not (source and dest):
        raise lib_exc.InvalidConfiguration(
            'two nova-compute services up and enabled, and listed in '
            '[migration] compute_hosts_file, are needed; found %s' %
            (', '.join(computes) or 'none'))
    return source, dest, pinned


def abortable(migrations):
    """The in-progress migrations that nova would abort."""
    return [m for m in migrations
            if m.get('status') in ABORTABLE_MIGRATION_STATUSES]


class MigrationIntegrityTestBase(base.BaseV2ComputeAdminTest):
    """A server writes self-describing blocks while nova moves it.

    The server belongs to the project's member (os_primary), as in
    tempest's own tests; admin makes only the admin calls (live-migrate,
    migrations, force-complete, abort, the server's host, reset-state,
    services).

    Subclasses that set `nova_options` ({[libvirt] option: value}), or
    `capped_bandwidth` (live_migration_bandwidth at [migration]
    slow_migration_bandwidth, so that a migration lasts long enough to act
    on), run their tests with those options on both compute hosts
    (NovaComputeConfig), which needs [migration] reconfigure_computes.
    """

    # 2.74 for the classes that act on a running migration: 2.65 aborts a
    # queued or preparing one (2.25 brought block_migration "auto", 2.24
    # abort, 2.22 force-complete).
    min_microversion = '2.74'
    nova_options = {}
    capped_bandwidth = False
    # Whether the class's migrations go through (False: nova must refuse
    # them, and no disk is ever copied).
    migrates = True
    # Whether its guests have local disks, which a live migration on local
    # storage copies (False: volume-backed guests, no block migration).
    copies_local_disks = True

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.compute_feature_enabled.live_migration:
            raise cls.skipException('[compute-feature-enabled] '
                                    'live_migration is off')
        if CONF.compute.min_compute_nodes < 2:
            raise cls.skipException('needs [compute] min_compute_nodes >= 2')
        if not CONF.migration.image_ref:
            raise cls.skipException('[migration] image_ref (the integrity '
                                    'guest image) is not set')
        if CONF.migration.host_access == 'none':
            raise cls.skipException('reading the disk back and the flag '
                                    'audit need [migration] host_access')
        if (cls.migrates and cls.copies_local_disks and
                CONF.migration.storage == 'local' and
                not CONF.compute_feature_enabled.
                block_migration_for_live_migration):
            raise cls.skipException(
                'on local storage every live migration copies the disk (a '
                'block migration), and [compute-feature-enabled] '
                'block_migration_for_live_migration is off')
        if cls.reconfigures() and not CONF.migration.reconfigure_computes:
            raise cls.skipException(
                'runs nova-compute with %s, and [migration] '
                'reconfigure_computes is false' % cls.libvirt_options())

    @classmethod
    def setup_clients(cls):
        super().setup_clients()
        # The member's: create, show, pause, console, delete.
        cls.servers = cls.servers_client
        # The admin's: live-migrate, the server's host, reset-state, its
        # in-progress migrations.
        cls.admin_servers = cls.os_admin.servers_client
        cls.admin_migrations_client = cls.os_admin.migrations_client
        cls.admin_services_client = cls.os_admin.services_client
        cls.live_migrations = (
            cls.os_admin.migration_compute.LiveMigrationsClient())

    @classmethod
    def resource_setup(cls):
        super().resource_setup()
        cls.hosts = access.load_hosts(CONF)
        services = cls.admin_services_client.list_services(
            binary='nova-compute')['services']
        computes = [s['host'] for s in services
                    if s['state'] == 'up' and s['status'] == 'enabled' and
                    s['host'] in cls.hosts]
        cls.source, cls.dest, cls.hosts_pinned = choose_hosts(
            computes, CONF.compute.migration_source_host,
            CONF.compute.migration_dest_host)
        if cls.reconfigures():
            config_fixture = fixtures.NovaComputeConfig(
                [cls.hosts[cls.source], cls.hosts[cls.dest]],
                cls.libvirt_options(), cls.admin_services_client,
                timeout=CONF.compute.build_timeout,
                hypervisors_client=cls.os_admin.hypervisor_client)
            config_fixture.setUp()
            cls.addClassResourceCleanup(config_fixture.cleanUp)

    def setUp(self):
        super().setUp()
        # {server id: {host: libvirtd log offset}} before its latest
        # migration started.
        self._log_marks = {}

    # -- the guest ------------------------------------------------------------

    def create_integrity_server(self, host=None, flavor=None, **kwargs):
        """Boot the integrity guest as the project's member, start
        recording its console, and have it on `host` (default: the source)
        with ACKS_BEFORE writes acknowledged; return (server,
        ConsoleLogRecorder).

        A member cannot name the host of a new server, so the scheduler
        places it.  Without `host`, and without [compute]
        migration_source_host or migration_dest_host, where it lands is
        the source of this test and the other compute its destination;
        otherwise a guest that landed elsewhere is first live-migrated
        where it must start (logged and reported), paused so that the move
        converges whatever the bandwidth.
        """
        # image_id='' with a block_device_mapping_v2 boots from a volume.
        server = self.create_test_server(
            image_id=kwargs.pop('image_id', CONF.migration.image_ref),
            flavor=(flavor or CONF.migration.flavor_ref or
                    CONF.compute.flavor_ref),
            wait_until='ACTIVE', **kwargs)
        # Gone at the end of this test, not of the class: every guest
        # writes as fast as it can and would slow the next tests down.
        # Cleanups run last in, first out: a migration still running is
        # aborted before the delete, which would otherwise race it.
        self.addCleanup(waiters.wait_for_server_termination, self.servers,
                        server['id'])
        self.addCleanup(test_utils.call_and_ignore_notfound_exc,
                        self.servers.delete_server, server['id'])
        self.addCleanup(self.abort_unfinished_migrations, server['id'])
        recorder = self.useFixture(console_log.ConsoleLogRecorder(
            self.hosts, server['id'],
            host_of=lambda: self.get_host_for_server(server['id']),
            shared=storage_modes.shared_instances_path(
                CONF.migration.storage)))
        recorder.wait_for_acks(ACKS_BEFORE, CONF.compute.build_timeout)
        self._place(server['id'], recorder, host)
        return server, recorder

    def _place(self, server_id, recorder, host=None):
        landed = self.get_host_for_server(server_id)
        wanted = host or self.source
        if landed == wanted:
            return
        if (host is None and landed == self.dest and
                not self.hosts_pinned):
            # Either way round will do: this test runs the other way.
            self.source, self.dest = self.dest, self.source
            return
        if (CONF.migration.storage == 'local' and not
                CONF.compute_feature_enabled.
                block_migration_for_live_migration):
            raise self.skipException(
                'the guest landed on %s, and moving it to %s takes a block '
                'migration, which [compute-feature-enabled] '
                'block_migration_for_live_migration says is off' % (
                    landed, wanted))
        # Paused, so that the move converges under a capped bandwidth.
        LOG.info('%s landed on %s; live-migrating it, paused, to %s before '
                 'the test', server_id, landed, wanted)
        self.save_report('placed', server_id, {
            'landed_on': landed, 'moved_to': wanted})
        self.pause(server_id)
        self.live_migrate(server_id, wanted, state='PAUSED')
        self.unpause(server_id)
        self.keep_writing(recorder)

    def keep_writing(self, recorder, count=ACKS_AFTER):
        recorder.wait_for_acks(recorder.acks() + count,
                               CONF.compute.build_timeout)

    @staticmethod
    def run_ids(hist):
        """The ids of the guest's runs (its boots), oldest first."""
        return [run.run for run in hist.runs]

    @staticmethod
    def acks_in_last_run(hist):
        return hist.runs[-1].acked_writes if hist.runs else 0

    def pause(self, server_id):
        self.servers.pause_server(server_id)
        waiters.wait_for_server_status(self.servers, server_id, 'PAUSED')

    def unpause(self, server_id):
        self.servers.unpause_server(server_id)
        waiters.wait_for_server_status(self.servers, server_id, 'ACTIVE')

    def disk_source(self, server_id, name='disk', host=None):
        """Where the instance's disk `name` (disk, disk.eph0, disk.swap,
        disk.config) lives: a file under `host`'s instances path, or with
        [migration] storage = rbd the RBD image nova made for it
        (<images_rbd_pool>/<uuid>_<name>, nova's imagebackend.Rbd)."""
        host = host or self.get_host_for_server(server_id)
        if storage_modes.plugin_kind(CONF.migration.storage).disks_in == \
                'rbd':
            user, conf = self.rbd_credentials(host)
            return access.RbdImage(
                self.hosts[host].rbd.get('pool',
                                         CONF.migration.images_rbd_pool),
                '%s_%s' % (server_id, name), user, conf)
        return self.hosts[host].instance_image(server_id, name)

    def rbd_credentials(self, host):
        """(cephx user, ceph.conf) with which `host` reads RBD images: the
        compute hosts file's, else [migration] rbd_user and
        rbd_ceph_conf."""
        rbd = self.hosts[host].rbd
        return (rbd.get('user', CONF.migration.rbd_user),
                rbd.get('conf', CONF.migration.rbd_ceph_conf))

    def assert_intact(self, server_id, recorder, host=None, name='check',
                      discarded_runs=(), disk='disk', tag=None, source=None):
        """Pause the guest, read its disk back and assert that every
        acknowledged write is on it, but those of `discarded_runs` (the
        boots whose writes the operation legitimately undid), of which
        none may be; return the oracle's report.  The guest stays
        paused.  `disk` and `tag`: another of the instance's disks (e.g.
        disk.eph0) and the tag of the agent that writes it.  `source`:
        the image to read instead of the instance's disk `disk` (a
        volume, hosts.access.RbdImage or BlockDevice), read on `host`.

        The disk is read where it lives (disk_source): under `host`'s
        instances path, or in Ceph with [migration] storage = rbd."""
        host = host or self.get_host_for_server(server_id)
        if self.servers.show_server(server_id)['server']['status'] != \
                'PAUSED':
            self.pause(server_id)
        # A paused guest no longer writes and its I/O is drained; its
        # console can still be read, so history and disk describe the same
        # moment.
        recorder.read()
        history = recorder.history(tag)
        # Only the part of the disk that the workload's layout covers.
        length = history.layout.size_bytes if history.layout else None
        source = source or self.disk_source(server_id, disk, host)
        with self.hosts[host].image(source, length) as image:
            report = checker.check(
                history, image,
                tolerate=console_artefacts(CONF.migration.storage),
                discarded_runs=discarded_runs)
        document = {'host': host, 'disk': disk, 'source': repr(source),
                    'oracle': report.to_dict(),
                    'discarded_runs': list(discarded_runs)}
        if report.verdict != checker.INTACT:
            document['console_segments'] = [
                {'host': seg.host, 'text': seg.text()[-20000:]}
                for seg in recorder.segments]
        self.save_report(name, server_id, document)
        self.assertEqual(checker.INTACT, report.verdict, report.message)
        return report

    def save_report(self, name, server_id, document):
        if not CONF.migration.report_dir:
            return
        os.makedirs(CONF.migration.report_dir, exist_ok=True)
        path = os.path.join(CONF.migration.report_dir, '%s-%s-%s.json' % (
            self.__class__.__name__, name, server_id))
        document = dict(document, test=self.id(),
                        storage=CONF.migration.storage)
        with open(path, 'w') as f:
            json.dump(document, f, indent=2, sort_keys=True)

    def record_nova_behaviour(self, name, server_id, document):
        """What nova did that the test does not assert (a nova bug, or an
        outcome either way): in the saved report, in the test's details
        (subunit) and in the log."""
        self.save_report(name, server_id, document)
        text = json.dumps(document, indent=2, sort_keys=True)
        self.addDetail('nova-behaviour-%s' % name, content.text_content(text))
        LOG.warning('nova behaviour (%s) for %s: %s', name, server_id, text)

    # -- migrations -----------------------------------------------------------

    def migrations(self, server_id):
        """The server's live migrations, oldest first."""
        found = self.admin_migrations_client.list_migrations(
            instance_uuid=server_id,
            migration_type='live-migration')['migrations']
        return sorted(found, key=lambda m: m['id'])

    def _migrations_text(self, server_id):
        return ', '.join('%s %s->%s' % (m['status'], m['source_compute'],
                                        m['dest_compute'])
                         for m in self.migrations(server_id))

    def log_marks(self):
        """{host: its libvirtd log's size now}, for both computes."""
        return {name: self.hosts[name].libvirtd_log_size()
                for name in (self.source, self.dest)}

    def libvirtd_log(self, host, server_id):
        """`host`'s libvirtd log since the server's latest migration
        started (the audits never read the whole debug log)."""
        marks = self._log_marks.get(server_id)
        if not marks or host not in marks:
            raise lib_exc.TempestException(
                'no libvirtd log offset of %s for %s: no migration of it '
                'was started by start_live_migration' % (host, server_id))
        return self.hosts[host].libvirtd_log_since(marks[host])

    def start_live_migration(self, server_id, dest, block_migration='auto'):
        self._log_marks[server_id] = self.log_marks()
        self.admin_servers.live_migrate_server(
            server_id, host=dest, block_migration=block_migration)

    def migration_ended(self, server_id):
        """The latest migration record when it has a final status and no
        task runs on the server, else None."""
        # The conductor writes the record after the API has answered.
        found = self.migrations(server_id)
        if not found or found[-1]['status'] not in FINAL_MIGRATION_STATUSES:
            return None
        server = self.servers.show_server(server_id)['server']
        return None if server.get('OS-EXT-STS:task_state') else found[-1]

    def wait_for_migration_end(self, server_id):
        """Wait until the server's latest migration has ended; return its
        record."""
        timeout = (CONF.compute.build_timeout +
                   CONF.migration.migration_timeout)
        box = {}

        def ended():
            box['migration'] = self.migration_ended(server_id)
            return box['migration'] is not None

        if not test_utils.call_until_true(ended, timeout, 1):
            raise lib_exc.TimeoutException(
                'the live migration of %s did not end within %ds: %s' % (
                    server_id, timeout, self._migrations_text(server_id)))
        return box['migration']

    def live_migrate(self, server_id, dest, block_migration='auto',
                     state='ACTIVE'):
        """Live-migrate and assert that it completed on `dest`: nova says
        so, libvirt there runs the guest (or holds it paused), and the
        source has no domain of it left (one that ran on would write the
        same disk: a split brain)."""
        source = self.get_host_for_server(server_id)
        self.start_live_migration(server_id, dest, block_migration)
        migration = self.wait_for_migration_end(server_id)
        self.assertEqual('completed', migration['status'],
                         'migrations: %s' % self._migrations_text(server_id))
        waiters.wait_for_server_status(self.servers, server_id, state)
        self.assertEqual(dest, self.get_host_for_server(server_id))
        self.assertEqual(DOMAIN_STATE[state],
                         self.hosts[dest].domain_state(server_id),
                         'libvirt on %s after the live migration of %s' % (
                             dest, server_id))
        self.assertFalse(self.hosts[source].has_domain(server_id),
                         'a domain of %s was left on its source %s' % (
                             server_id, source))
        return migration

    def abort_unfinished_migrations(self, server_id):
        """Cleanup: abort the server's live migration if one still runs and
        wait until it has ended, so that deleting the server does not race
        it.  Failures are logged: the delete follows either way."""
        try:
            running = self.admin_servers.list_in_progress_live_migration(
                server_id)['migrations']
        except lib_exc.NotFound:
            return
        if not running:
            return
        for migration in abortable(running):
            LOG.warning('cleanup: aborting live migration %s of %s (%s)',
                        migration['id'], server_id, migration['status'])
            try:
                self.live_migrations.abort_live_migration(server_id,
                                                          migration['id'])
            except (lib_exc.BadRequest, lib_exc.Conflict,
                    lib_exc.NotFound) as exc:
                LOG.warning('cleanup: abort of migration %s refused: %s',
                            migration['id'], exc)

        def none_running():
            try:
                return not self.admin_servers.list_in_progress_live_migration(
                    server_id)['migrations']
            except lib_exc.NotFound:
                return True

        if not test_utils.call_until_true(
                none_running, CONF.migration.migration_timeout, 2):
            LOG.warning('cleanup: a live migration of %s still runs after '
                        '%ds; deleting the server anyway', server_id,
                        CONF.migration.migration_timeout)

    def assert_back_on_source(self, server_id, source, dest, cause=None):
        """After a migration that failed or was aborted, assert what a user
        may rely on: nova says the guest is on `source`, libvirt there runs
        it, and nothing of it is left on `dest`; with `cause`, libvirt on
        the source logged that error after the server's migrate call.
        Return what nova did with the instance (recorded, not asserted).

        The server must be ACTIVE again.  nova 34 sets the instance to
        ERROR instead, with no fault (NOVA_ROLLBACK_TO_ERROR): unless the
        cloud is known to (ROLLBACK_TO_ERROR in [migration] known_bugs),
        that fails the test.  Either way the status is recorded, with the
        fault and the migration record; with the finding named, the test
        goes on (pausing the guest to read its disk needs it ACTIVE), so
        the ERROR is reset to active as an operator would, and that
        reset-state is logged, reported and attached to the test's details.
        """
        log = self.libvirtd_log(source, server_id)
        calls = libvirt_log.migrate_calls(log, server_id)
        self.assertNotEqual([], calls, 'no migrate call for %s in the '
                            'libvirtd log of %s' % (server_id, source))
        errors = libvirt_log.errors_after(log, calls[-1].line, cause)
        if cause:
            self.assertNotEqual([], errors, 'libvirtd on %s logged no "%s" '
                                'after the migrate call of %s' % (
                                    source, cause, server_id))
        # nova 34 sets ERROR right after the rollback has cleared the task
        # state: give it a moment, then take the server as it is.
        test_utils.call_until_true(
            lambda: self.admin_servers.show_server(server_id)['server'][
                'status'] == 'ERROR', 15, 1)
        server = self.admin_servers.show_server(server_id)['server']
        self.assertEqual(source, server['OS-EXT-SRV-ATTR:host'],
                         'nova says %s is on %s' % (
                             server_id, server['OS-EXT-SRV-ATTR:host']))
        self.assertEqual('running',
                         self.hosts[source].domain_state(server_id),
                         'the guest does not run on its source %s' % source)
        self.assertFalse(self.hosts[dest].has_domain(server_id),
                         'a domain of %s was left on %s' % (server_id, dest))
        if not storage_modes.shared_instances_path(CONF.migration.storage):
            self.assertFalse(self.hosts[dest].has_instance_dir(server_id),
                             'instance files of %s were left on %s' % (
                                 server_id, dest))
        behaviour = {
            'source': source, 'dest': dest, 'cause': cause,
            'libvirt_errors': errors[:5],
            'status': server['status'],
            'task_state': server.get('OS-EXT-STS:task_state'),
            'fault': server.get('fault'),
            'migration': self.migrations(server_id)[-1],
            'reset_state': False,
        }
        if server['status'] == 'ERROR':
            known = ROLLBACK_TO_ERROR in CONF.migration.known_bugs
            behaviour['reset_state'] = known
            behaviour['nova_bug'] = NOVA_ROLLBACK_TO_ERROR
            self.record_nova_behaviour(ROLLBACK_TO_ERROR, server_id,
                                       behaviour)
            self.assertTrue(known, 'nova rolled the live migration of %s '
                            'back (the guest runs on %s) and set the server '
                            'to ERROR; a cloud known to do so names %s in '
                            '[migration] known_bugs' % (
                                server_id, source, ROLLBACK_TO_ERROR))
            LOG.warning('resetting %s to active (reset-state) to go on '
                        '(known finding %s)', server_id, ROLLBACK_TO_ERROR)
            self.admin_servers.reset_state(server_id, state='active')
        else:
            self.save_report('rolled-back', server_id, behaviour)
        waiters.wait_for_server_status(self.servers, server_id, 'ACTIVE')
        return behaviour

    def wait_for_running_migration(self, server_id, copying=None):
        """The in-progress migration once nova calls it running; with
        `copying` ('memory' or 'disk'), once libvirt has reported bytes of
        that phase too.  nova marks a migration running before QEMU has
        started it, and QEMU refuses a switch to post-copy until then
        ("Enable postcopy with migrate_set_capability before the start of
        migration", seen in the lab); nova saves the progress every
        live_migration_monitor_interval (5 s)."""
        box = {}

        def running():
            found = self.admin_servers.list_in_progress_live_migration(
                server_id)['migrations']
            migration = box['migration'] = found[0] if found else None
            return (migration is not None and
                    migration['status'] == 'running' and
                    (copying is None or
                     (migration.get('%s_processed_bytes' % copying) or 0) > 0))

        if not test_utils.call_until_true(
                running, CONF.migration.migration_timeout, 1):
            raise lib_exc.TimeoutException(
                'migration of %s never ran%s: %s' % (
                    server_id, ' copying ' + copying if copying else '',
                    box.get('migration') or self._migrations_text(server_id)))
        return box['migration']

    # -- flags ----------------------------------------------------------------

    @classmethod
    def reconfigures(cls):
        return bool(cls.nova_options or cls.capped_bandwidth)

    @classmethod
    def libvirt_options(cls):
        """The [libvirt] options a class with `nova_options` writes: every
        option that decides the flags, at nova's default unless the class
        sets it, so that what the cloud was deployed with (a tunnelled
        devstack, say) cannot combine with the class's option into a set
        that nova or libvirt refuses."""
        options = dict(dataclasses.asdict(flags.NovaOptions()),
                       **cls.nova_options)
        if cls.capped_bandwidth:
            options['live_migration_bandwidth'] = (
                CONF.migration.slow_migration_bandwidth)
        return options

    @classmethod
    def nova_configuration(cls):
        """nova's migration options on the computes during this class: the
        class's own, or the cloud's as [migration] mirrors them."""
        if cls.reconfigures():
            options = cls.libvirt_options()
        else:
            options = {k: getattr(CONF.migration, k) for k in NOVA_OPTIONS}
        return flags.NovaOptions(**{k: options[k] for k in NOVA_OPTIONS})

    def expected_flags(self, block_migration, paused=False):
        return flags.nova_flags(self.nova_configuration(),
                                block_migration=block_migration,
                                paused=paused)

    def audit_flags(self, server_id, source, expected, name='flags'):
        """Assert that the migrate call for the server in the source's
        libvirtd log since its latest migration started had exactly
        `expected`; return the flags."""
        calls = libvirt_log.migrate_calls(self.libvirtd_log(source,
                                                            server_id),
                                          server_id)
        self.assertNotEqual([], calls, 'no migrate call for %s in the '
                            'libvirtd log of %s since its migration '
                            'started' % (server_id, source))
        audited = calls[-1].flags
        self.save_report(name, server_id, {
            'source': source, 'flags': flags.names(audited),
            'expected': flags.names(expected)})
        if storage_modes.shared_disks(CONF.migration.storage):
            self.assertFalse(
                flags.has(audited, 'NON_SHARED_INC') or
                flags.has(audited, 'NON_SHARED_DISK'),
                'a disk copy on shared storage: %s' % flags.to_text(audited))
        self.assertEqual(flags.to_text(expected), flags.to_text(audited),
                         'nova handed libvirt other flags than its policy '
                         'says for this configuration')
        return audited

    def audit_copied_disks(self, server_id, source, expected,
                           name='copied-disks'):
        """Assert that the migrate call for the server in the source's
        libvirtd log since its latest migration started named exactly the
        disks `expected` (device names) in migrate_disks, and that the
        source's QEMU was asked to mirror exactly those to the destination
        (blockdev-mirror, libvirt 9.0; drive-mirror names an alias, which
        the test's device names do not match: an older libvirt fails this
        loudly rather than passing it).  Return (migrate_disks,
        mirrored)."""
        log = self.libvirtd_log(source, server_id)
        calls = libvirt_log.migrate_calls(log, server_id)
        self.assertNotEqual([], calls, 'no migrate call for %s in the '
                            'libvirtd log of %s since its migration '
                            'started' % (server_id, source))
        named = libvirt_log.migrate_disks(log, calls[-1])
        mirrored = libvirt_log.mirrored_disks(log, calls[-1])
        self.save_report(name, server_id, {
            'source': source, 'migrate_disks': named, 'mirrored': mirrored,
            'expected': list(expected)})
        self.assertEqual(sorted(expected), sorted(named),
                         'migrate_disks of the migrate call')
        self.assertEqual(sorted(expected), sorted(mirrored),
                         'disks the source mirrored to the destination')
        return named, mirrored

    @property
    def block_by_storage(self):
        """What `auto` must choose: a disk copy only where nova does not
        count the disks as shared (local storage; not nfs, not rbd)."""
        return not storage_modes.shared_disks(CONF.migration.storage)
