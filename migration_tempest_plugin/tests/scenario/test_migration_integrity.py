"""Live and block migration through nova, with the guest's disk judged by
the integrity oracle before and after, and the flags nova handed libvirt
audited from the source host's libvirtd log."""

import json
import os
import time

from tempest import config
from tempest.lib.common import api_microversion_fixture
from tempest.lib.common.utils import data_utils
from tempest.lib.common.utils import test_utils
from tempest.lib import decorators
from tempest.lib import exceptions as lib_exc
from tempest import test

from migration_tempest_plugin import flags
from migration_tempest_plugin.hosts import access
from migration_tempest_plugin.hosts import libvirt_log
from migration_tempest_plugin.integrity import checker
from migration_tempest_plugin.integrity import history as historylib

CONF = config.CONF

# 2.25: block_migration "auto"; 2.37: networks "none"; 2.74: a host for
# the new server, so that the test knows where it starts.
MICROVERSION = '2.74'
# Before 2.34 the live-migration pre-checks answer the API call itself.
SYNC_PRECHECK_MICROVERSION = '2.30'
ACKS_BEFORE = 40
ACKS_AFTER = 20


class ConsoleRecorder(object):
    """Keeps every console text seen: after a migration the destination's
    console log starts afresh, and the history needs both halves."""

    def __init__(self, servers_client, server_id):
        self.client = servers_client
        self.server_id = server_id
        self.texts = []

    def snapshot(self):
        output = self.client.get_console_output(self.server_id)['output']
        if output and (not self.texts or output != self.texts[-1]):
            if self.texts and output.startswith(self.texts[-1]):
                self.texts[-1] = output
            else:
                self.texts.append(output)
        return output

    def snapshot_if_available(self):
        # Best effort while the guest moves: around the switch-over nova
        # answers 404 ("Guest does not have a console available") or 500
        # (a RemoteError from the compute that no longer has the domain).
        # What is missed is a gap, which the checker is told to accept.
        try:
            self.snapshot()
        except (lib_exc.NotFound, lib_exc.ServerFault):
            pass

    def acks(self):
        return historylib.parse(self.texts).acked_writes if self.texts else 0

    def wait_for_acks(self, count, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.snapshot()
            if 'MTP FATAL' in (text or ''):
                raise lib_exc.TempestException(
                    'guest workload failed: %s' % text[
                        text.index('MTP FATAL'):].splitlines()[0])
            if self.acks() >= count:
                return
            time.sleep(2)
        raise lib_exc.TimeoutException(
            'guest acknowledged %d of %d writes within %ds'
            % (self.acks(), count, timeout))


class MigrationIntegrityTest(test.BaseTestCase):
    """A server writes self-describing blocks while nova moves it."""

    credentials = ['primary', 'admin']

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.service_available.nova:
            raise cls.skipException('nova is not available')
        if not CONF.compute_feature_enabled.live_migration:
            raise cls.skipException('live migration is not enabled')
        if CONF.compute.min_compute_nodes < 2:
            raise cls.skipException('needs [compute] min_compute_nodes >= 2')
        if not CONF.migration.image_ref:
            raise cls.skipException('[migration] image_ref (the integrity '
                                    'guest image) is not set')

    @classmethod
    def setup_clients(cls):
        super().setup_clients()
        cls.servers = cls.os_admin.servers_client
        cls.migrations = cls.os_admin.migrations_client
        cls.services = cls.os_admin.services_client

    def setUp(self):
        super().setUp()
        self.useFixture(api_microversion_fixture.APIMicroversionFixture(
            compute_microversion=MICROVERSION))
        self.hosts = access.load_hosts(CONF)

    # -- helpers ----------------------------------------------------------

    def _compute_hosts(self):
        services = self.services.list_services(
            binary='nova-compute')['services']
        hosts = sorted(s['host'] for s in services
                       if s['state'] == 'up' and s['status'] == 'enabled')
        if len(hosts) < 2:
            raise self.skipException('fewer than two compute hosts up')
        return hosts

    def _boot(self, host):
        name = data_utils.rand_name(self.__class__.__name__ + '-server')
        flavor = CONF.migration.flavor_ref or CONF.compute.flavor_ref
        body = self.servers.create_server(
            name=name, imageRef=CONF.migration.image_ref, flavorRef=flavor,
            networks='none', host=host)['server']
        self.addCleanup(self._delete, body['id'])
        self._wait_for(body['id'], 'ACTIVE')
        return body['id']

    def _delete(self, server_id):
        test_utils.call_and_ignore_notfound_exc(self.servers.delete_server,
                                                server_id)
        deadline = time.time() + CONF.compute.build_timeout
        while time.time() < deadline:
            try:
                self.servers.show_server(server_id)
            except lib_exc.NotFound:
                return
            time.sleep(1)

    def _wait_for(self, server_id, status, host=None, timeout=None,
                  on_poll=None):
        timeout = timeout or CONF.compute.build_timeout
        deadline = time.time() + timeout
        server = {}
        while time.time() < deadline:
            server = self.servers.show_server(server_id)['server']
            if server['status'] == 'ERROR':
                raise lib_exc.TempestException(
                    'server %s went to ERROR: %s' % (
                        server_id, server.get('fault', {}).get('message')))
            if (server['status'] == status and not
                    server.get('OS-EXT-STS:task_state') and
                    (host is None or
                     server['OS-EXT-SRV-ATTR:host'] == host)):
                return server
            if on_poll:
                on_poll()
            time.sleep(1)
        raise lib_exc.TimeoutException(
            'server %s: status %s, host %s, task %s after %ds (wanted %s%s)'
            % (server_id, server.get('status'),
               server.get('OS-EXT-SRV-ATTR:host'),
               server.get('OS-EXT-STS:task_state'), timeout, status,
               ' on ' + host if host else ''))

    def _live_migrate(self, server_id, dest, block_migration='auto',
                      console=None):
        self.servers.live_migrate_server(server_id, host=dest,
                                         block_migration=block_migration)
        try:
            # Keep reading the console: the source's log is gone after.
            return self._wait_for(
                server_id, 'ACTIVE', host=dest,
                timeout=CONF.migration.migration_timeout,
                on_poll=console.snapshot_if_available if console else None)
        except lib_exc.TimeoutException as exc:
            migrations = self.migrations.list_migrations(
                instance_uuid=server_id)['migrations']
            raise lib_exc.TimeoutException('%s; migrations: %s' % (
                exc, [(m['status'], m['source_compute'],
                       m['dest_compute']) for m in migrations]))

    def _pause(self, server_id):
        self.servers.pause_server(server_id)
        self._wait_for(server_id, 'PAUSED')

    def _expected_flags(self, block_migration):
        opts = CONF.migration
        return flags.nova_flags(flags.NovaOptions(
            live_migration_tunnelled=opts.live_migration_tunnelled,
            live_migration_with_native_tls=(
                opts.live_migration_with_native_tls),
            live_migration_permit_post_copy=(
                opts.live_migration_permit_post_copy),
            live_migration_permit_auto_converge=(
                opts.live_migration_permit_auto_converge),
            live_migration_parallel_connections=(
                opts.live_migration_parallel_connections)),
            block_migration=block_migration)

    def _save_report(self, name, document):
        if not CONF.migration.report_dir:
            return
        os.makedirs(CONF.migration.report_dir, exist_ok=True)
        path = os.path.join(CONF.migration.report_dir, name + '.json')
        with open(path, 'w') as f:
            json.dump(document, f, indent=2, sort_keys=True)

    # -- tests ------------------------------------------------------------

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('5b0f6a43-3b1e-4f8e-9a55-2f0d3c7b8e61')
    def test_live_migration_keeps_acknowledged_writes(self):
        """block_migration=auto: nova picks block or shared-storage mode
        by itself; no acknowledged write may be lost either way."""
        if CONF.migration.host_access == 'none':
            raise self.skipException('reading the disk back needs '
                                     '[migration] host_access')
        source, dest = self._compute_hosts()[:2]
        server_id = self._boot(source)
        console = ConsoleRecorder(self.servers, server_id)
        console.wait_for_acks(ACKS_BEFORE, CONF.compute.build_timeout)

        self._live_migrate(server_id, dest, console=console)
        # The guest goes on writing on the destination.
        console.wait_for_acks(console.acks() + ACKS_AFTER,
                              CONF.compute.build_timeout)

        for host in (source, dest):
            self.assertIn(host, self.hosts, 'no entry for compute host %s in '
                          '[migration] compute_hosts_file' % host)
        calls = libvirt_log.migrate_calls(
            self.hosts[source].libvirtd_log(), server_id)
        self.assertNotEqual([], calls, 'no migrate call for %s in the '
                            'libvirtd log of %s' % (server_id, source))
        audited = calls[-1].flags

        # Pausing stops the guest's writes and drains its I/O; the console
        # of a paused server can still be read (a stopped one has none), so
        # history and disk describe the same moment.
        self._pause(server_id)
        console.snapshot()
        image = self.hosts[dest].read_disk(server_id)
        history = historylib.parse(console.texts)
        # Polling nova's console API leaves gaps (and the source's console
        # log is gone after the migration); see checker.check().
        report = checker.check(history, image, tolerate=('gap',))
        self._save_report('live-migration-%s' % server_id, {
            'storage': CONF.migration.storage,
            'flags': flags.names(audited),
            'oracle': report.to_dict()})
        self.assertEqual(checker.INTACT, report.verdict, report.message)

        block = CONF.migration.storage == 'local'
        self.assertEqual(flags.to_text(self._expected_flags(block)),
                         flags.to_text(audited),
                         'nova handed libvirt other flags than its policy '
                         'says for this configuration')

    @decorators.attr(type=['negative', 'multinode'])
    @decorators.idempotent_id('a1f3e9c2-6d0b-4c57-8f3e-7b2d9e4c1a08')
    def test_block_migration_refused_on_shared_storage(self):
        """The seed's unsafe case through nova's front door: asking for a
        block migration on shared storage must be refused, not copy the
        disk over itself."""
        if CONF.migration.storage != 'nfs':
            raise self.skipException('needs [migration] storage = nfs')
        source, dest = self._compute_hosts()[:2]
        server_id = self._boot(source)
        self.useFixture(api_microversion_fixture.APIMicroversionFixture(
            compute_microversion=SYNC_PRECHECK_MICROVERSION))
        error = self.assertRaises(
            lib_exc.BadRequest, self.servers.live_migrate_server, server_id,
            host=dest, block_migration=True, disk_over_commit=False)
        self.assertIn('Block migration can not be used with shared storage',
                      str(error))
        self.useFixture(api_microversion_fixture.APIMicroversionFixture(
            compute_microversion=MICROVERSION))
        server = self._wait_for(server_id, 'ACTIVE')
        self.assertEqual(source, server['OS-EXT-SRV-ATTR:host'])
