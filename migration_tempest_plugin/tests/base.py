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

from migration_tempest_plugin import flags
from migration_tempest_plugin.hosts import access
from migration_tempest_plugin.hosts import libvirt_log
from migration_tempest_plugin.integrity import checker
from migration_tempest_plugin.tests import fixtures

CONF = config.CONF
LOG = logging.getLogger(__name__)

# Writes the guest acknowledges before a migration starts, and after it (on
# the destination), so that both hosts wrote what the checker reads.
ACKS_BEFORE = 40
ACKS_AFTER = 20
# nova's statuses of a migration that is over (nova/objects/migration.py).
FINAL_MIGRATION_STATUSES = ('completed', 'error', 'failed', 'cancelled',
                            'done')
# The [libvirt] options that decide the flags (and their [migration] mirror).
NOVA_OPTIONS = tuple(f.name for f in dataclasses.fields(flags.NovaOptions))


# History problems that come from how nova's console is read, not
# from the guest.  Writes are sequential, so the newest ACK proves
# every earlier write; an ACK missing or seen late changes nothing
# the disk must hold, and every ACK that is counted was checked
# against its seq (``bad-sum`` is not tolerated), so tolerating
# these never invents an acknowledged write.
#
# gap: nova returns only the tail of the log of the host the guest
# runs on, and the source's log is gone after a migration.
# order and malformed, on every storage: console.log has two writers.
# virtlogd logs the serial port, and each GET of the console output
# makes nova's libvirt driver read the guest's pty and append what
# it holds to the same file (get_console_output, "a+"), in the middle
# of whatever line virtlogd has half written (seen on local storage:
# "MTP ACK 2015 116MTP ACK 2013 1 b3f13d6c").  On shared storage the
# two hosts also write the one console.log in the shared instance
# folder, the destination's virtlogd starting it afresh while the
# source goes on at its old offset, so one line can be overwritten by
# another of the same width and come out well formed but wrong (seen in
# post-copy on shared storage: "seq 5335" with 1349 writes acknowledged):
# a bad-sum, which no guest can print, since a record's index, generation
# and sum follow from its sequence number.  Such records count for
# nothing; the disk is still judged on every record that is right.
CONSOLE_ARTEFACTS = ('gap', 'order', 'malformed', 'bad-sum')


class MigrationIntegrityTestBase(base.BaseV2ComputeAdminTest):
    """A server writes self-describing blocks while nova moves it.

    Subclasses that set `nova_options` ({[libvirt] option: value}), or
    `capped_bandwidth` (live_migration_bandwidth at [migration]
    slow_migration_bandwidth, so that a migration lasts long enough to act
    on), run their tests with those options on both compute hosts
    (NovaComputeConfig), which needs [migration] reconfigure_computes.
    """

    # 2.74: a host for the new server, so that the test knows where it
    # starts (2.25 brought block_migration "auto", 2.24 abort, 2.22
    # force-complete).
    min_microversion = '2.74'
    nova_options = {}
    capped_bandwidth = False

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
        if cls.reconfigures() and not CONF.migration.reconfigure_computes:
            raise cls.skipException(
                'runs nova-compute with %s, and [migration] '
                'reconfigure_computes is false' % cls.libvirt_options())

    @classmethod
    def setup_clients(cls):
        super().setup_clients()
        cls.servers = cls.os_admin.servers_client
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
        computes = sorted(s['host'] for s in services
                          if s['state'] == 'up' and s['status'] == 'enabled'
                          and s['host'] in cls.hosts)
        if len(computes) < 2:
            raise lib_exc.InvalidConfiguration(
                'two nova-compute services up and enabled, and listed in '
                '[migration] compute_hosts_file, are needed; found %s' %
                (computes or 'none'))
        cls.source, cls.dest = computes[:2]
        if cls.reconfigures():
            config_fixture = fixtures.NovaComputeConfig(
                [cls.hosts[cls.source], cls.hosts[cls.dest]],
                cls.libvirt_options(), cls.admin_services_client,
                timeout=CONF.compute.build_timeout)
            config_fixture.setUp()
            cls.addClassResourceCleanup(config_fixture.cleanUp)

    # -- the guest ------------------------------------------------------------

    def create_integrity_server(self, host=None):
        """Boot the integrity guest (on `host` when given) and start
        recording its console; return (server, ConsoleRecorder)."""
        kwargs = {'host': host} if host else {}
        server = self.create_test_server(
            clients=self.os_admin, image_id=CONF.migration.image_ref,
            flavor=CONF.migration.flavor_ref or CONF.compute.flavor_ref,
            wait_until='ACTIVE', **kwargs)
        # Gone at the end of this test, not of the class: every guest
        # writes as fast as it can and would slow the next tests down.
        self.addCleanup(waiters.wait_for_server_termination, self.servers,
                        server['id'])
        self.addCleanup(test_utils.call_and_ignore_notfound_exc,
                        self.servers.delete_server, server['id'])
        recorder = self.useFixture(fixtures.ConsoleRecorder(self.servers,
                                                            server['id']))
        recorder.wait_for_acks(ACKS_BEFORE, CONF.compute.build_timeout)
        return server, recorder

    def keep_writing(self, recorder, count=ACKS_AFTER):
        recorder.wait_for_acks(recorder.acks() + count,
                               CONF.compute.build_timeout)

    def assert_intact(self, server_id, recorder, host=None, name='check'):
        """Pause the guest, read its disk back and assert that every
        acknowledged write is on it; return the oracle's report."""
        host = host or self.get_host_for_server(server_id)
        if self.servers.show_server(server_id)['server']['status'] != \
                'PAUSED':
            self.servers.pause_server(server_id)
            waiters.wait_for_server_status(self.servers, server_id, 'PAUSED')
        # A paused guest no longer writes and its I/O is drained; its
        # console can still be read, so history and disk describe the same
        # moment.
        recorder.read()
        image = self.hosts[host].read_disk(server_id)
        history = recorder.history()
        report = checker.check(history, image,
                               tolerate=CONSOLE_ARTEFACTS)
        document = {'host': host, 'oracle': report.to_dict()}
        if report.verdict != checker.INTACT:
            document['console_captures'] = list(recorder.raw)
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

    def start_live_migration(self, server_id, dest, block_migration='auto'):
        self.servers.live_migrate_server(server_id, host=dest,
                                         block_migration=block_migration)

    def wait_for_migration_end(self, server_id):
        """Wait until the server's latest migration record has its final
        status and no task runs on the server; return the record."""
        timeout = (CONF.compute.build_timeout +
                   CONF.migration.migration_timeout)
        box = {}

        def ended():
            # The conductor writes the record after the API has answered.
            found = self.migrations(server_id)
            if not found:
                return False
            migration = box['migration'] = found[-1]
            server = self.servers.show_server(server_id)['server']
            return (migration['status'] in FINAL_MIGRATION_STATUSES and
                    not server.get('OS-EXT-STS:task_state'))

        if not test_utils.call_until_true(ended, timeout, 1):
            raise lib_exc.TimeoutException(
                'the live migration of %s did not end within %ds: %s' % (
                    server_id, timeout, self._migrations_text(server_id)))
        return box['migration']

    def live_migrate(self, server_id, dest, block_migration='auto',
                     state='ACTIVE'):
        """Live-migrate and assert that it completed on `dest`."""
        self.start_live_migration(server_id, dest, block_migration)
        migration = self.wait_for_migration_end(server_id)
        self.assertEqual('completed', migration['status'],
                         'migrations: %s' % self._migrations_text(server_id))
        waiters.wait_for_server_status(self.servers, server_id, state)
        self.assertEqual(dest, self.get_host_for_server(server_id))
        return migration

    def assert_back_on_source(self, server_id, source, dest, cause):
        """After a migration that failed or was aborted: libvirt on the
        source logged `cause` after the server's migrate call, the guest
        runs on `source`, and nothing of it is left on `dest`.

        nova 34 rolls such a migration back and then sets the instance to
        ERROR anyway, with no fault: its libvirt driver re-raises the error
        of the migration thread after the monitor has rolled back, in the
        compute manager's background thread, which takes it for a failure
        too late to roll back.  The guest never left the source, so an
        admin's reset-state brings the instance back, as an operator would.
        """
        log = self.source_log(source)
        calls = libvirt_log.migrate_calls(log, server_id)
        self.assertNotEqual([], calls, 'no migrate call for %s in the '
                            'libvirtd log of %s' % (server_id, source))
        self.assertNotEqual([], libvirt_log.errors_after(
            log, calls[-1].line, cause), 'libvirtd on %s logged no "%s" '
            'after the migrate call of %s' % (source, cause, server_id))
        # The manager sets ERROR right after the rollback has cleared the
        # task state: give it a moment, then take the server as it is.
        test_utils.call_until_true(
            lambda: self.servers.show_server(server_id)['server'][
                'status'] == 'ERROR', 15, 1)
        server = self.servers.show_server(server_id)['server']
        self.assertEqual(source, server['OS-EXT-SRV-ATTR:host'])
        self.assertIn(server['status'], ('ACTIVE', 'ERROR'))
        self.assertTrue(self.hosts[source].has_domain(server_id),
                        'no domain of %s on its source %s' % (server_id,
                                                              source))
        self.assertFalse(self.hosts[dest].has_domain(server_id),
                         'a domain of %s was left on %s' % (server_id, dest))
        if CONF.migration.storage == 'local':
            self.assertFalse(self.hosts[dest].has_instance_dir(server_id),
                             'instance files of %s were left on %s' % (
                                 server_id, dest))
        if server['status'] == 'ERROR':
            LOG.warning('%s is in ERROR after a rolled-back migration (%s); '
                        'resetting it to active', server_id, cause)
            self.save_report('rolled-back-to-error', server_id, {
                'cause': cause, 'fault': server.get('fault')})
            self.servers.reset_state(server_id, state='active')
        waiters.wait_for_server_status(self.servers, server_id, 'ACTIVE')

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
            found = self.servers.list_in_progress_live_migration(
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

    def source_log(self, host):
        return self.hosts[host].libvirtd_log()

    def audit_flags(self, server_id, source, expected):
        """Assert that the last migrate call for the server in the source's
        libvirtd log had exactly `expected`; return the flags."""
        calls = libvirt_log.migrate_calls(self.source_log(source), server_id)
        self.assertNotEqual([], calls, 'no migrate call for %s in the '
                            'libvirtd log of %s' % (server_id, source))
        audited = calls[-1].flags
        self.save_report('flags', server_id, {
            'source': source, 'flags': flags.names(audited),
            'expected': flags.names(expected)})
        if CONF.migration.storage == 'nfs':
            self.assertFalse(
                flags.has(audited, 'NON_SHARED_INC') or
                flags.has(audited, 'NON_SHARED_DISK'),
                'a disk copy on shared storage: %s' % flags.to_text(audited))
        self.assertEqual(flags.to_text(expected), flags.to_text(audited),
                         'nova handed libvirt other flags than its policy '
                         'says for this configuration')
        return audited

    @property
    def block_by_storage(self):
        """What `auto` must choose: a disk copy only on local storage."""
        return CONF.migration.storage == 'local'
