"""Fixtures of the tempest tests: the guest's console history, and a nova
configuration on the compute hosts."""

import collections
import threading
import time

import fixtures
from oslo_log import log as logging
from tempest.lib.common.utils import test_utils
from tempest.lib import exceptions as lib_exc

from migration_tempest_plugin.hosts import nova_conf
from migration_tempest_plugin.integrity import console
from migration_tempest_plugin.integrity import history as historylib

LOG = logging.getLogger(__name__)

# What nova answers while a guest moves: 404 "Guest does not have a console
# available" or 500 (a RemoteError from a compute that no longer has the
# domain) around the switch-over, 409 while the instance is locked in a task.
_MOVING = (lib_exc.NotFound, lib_exc.ServerFault, lib_exc.Conflict)


class ConsoleRecorder(fixtures.Fixture):
    """Reads a server's console every `interval` seconds, in the background.

    The console is the guest's history of acknowledged writes.  Nova returns
    only the tail of the console log of the host that runs the guest, and
    after a migration the source's log is gone, so the recorder keeps
    reading while the test waits for the migration, and merges what it
    reads (integrity.console).  What it misses around the switch-over is a
    gap, which the checker is told to tolerate.
    """

    def __init__(self, servers_client, server_id, interval=1.0):
        super().__init__()
        self.client = servers_client
        self.server_id = server_id
        self.interval = interval

    def _setUp(self):
        self.capture = console.ConsoleStream()
        # The captures that changed the stream, for a report when the
        # oracle cannot judge (bounded: a capture is at most 100 KiB).
        self.raw = collections.deque(maxlen=200)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._error = None
        self._thread = threading.Thread(
            target=self._poll, name='console-%s' % self.server_id,
            daemon=True)
        self._thread.start()
        self.addCleanup(self._halt)

    def _halt(self):
        self._stop.set()
        self._thread.join(timeout=60)

    def _poll(self):
        while not self._stop.wait(self.interval):
            try:
                self.read(best_effort=True)
            except Exception as exc:
                # Reported by the next read() or wait_for_acks().
                self._error = exc
                LOG.exception('console recorder of %s stopped',
                              self.server_id)
                return

    def read(self, best_effort=False):
        """Read the console once; around a switch-over nova may have none
        for a moment, which `best_effort` ignores."""
        if self._error is not None:
            raise self._error
        try:
            output = self.client.get_console_output(
                self.server_id)['output'] or ''
        except _MOVING:
            if best_effort:
                return
            raise
        with self._lock:
            if self.capture.add(output) != console.SEEN:
                self.raw.append(output)

    def history(self):
        with self._lock:
            return historylib.parse(self.capture.texts())

    def acks(self):
        return self.history().acked_writes

    def wait_for_acks(self, count, timeout):
        """Wait until the guest has acknowledged `count` writes in all."""
        def enough():
            self.read(best_effort=True)
            fatal = [p for p in self.history().problems if p.kind == 'fatal']
            if fatal:
                raise lib_exc.TempestException(
                    'guest workload failed: %s' % fatal[0].detail)
            return self.acks() >= count

        if not test_utils.call_until_true(enough, timeout, 2):
            raise lib_exc.TimeoutException(
                'guest %s acknowledged %d of %d writes within %ds' % (
                    self.server_id, self.acks(), count, timeout))


# Beside each compute's nova.conf while a test class runs it with other
# options: the file as the deployment wrote it.  Written before the first
# change and never overwritten while it exists, so that a run killed before
# its cleanup (SIGKILL) leaves it for the next run to restore.
ORIGINAL_SUFFIX = '.migration-tempest-orig'


class NovaComputeConfig(fixtures.Fixture):
    """nova-compute on each of `hosts` runs with `options` set in its
    nova.conf `section` until cleanUp, which puts the original files back
    and restarts nova-compute again, also after a failure.

    The original of each file is kept on its host, beside it
    (ORIGINAL_SUFFIX), from before the first change until cleanUp has put
    it back.  One found there at setUp is what a killed run left: it is
    restored first, and said so.

    nova reads its migration flags once, in init_host(), so each change
    takes a restart; the fixture returns when every restarted service has
    reported to nova again.  Every host is restarted even when another's
    restart fails, and all failures are reported together.
    """

    def __init__(self, hosts, options, services_client, timeout,
                 section='libvirt'):
        super().__init__()
        self.hosts = list(hosts)
        self.options = dict(options)
        self.services = services_client
        self.timeout = timeout
        self.section = section
        # Names of the hosts whose nova.conf a killed run had left changed.
        self.leftovers = []

    @staticmethod
    def original(host):
        return host.nova_conf + ORIGINAL_SUFFIX

    def _setUp(self):
        for host in self.hosts:
            if not host.nova_conf:
                raise lib_exc.InvalidConfiguration(
                    'no nova_conf for compute host %s in [migration] '
                    'compute_hosts_file' % host.name)
        self._touched = False
        # Cleanups run last in, first out: every file is put back, then
        # every nova-compute restarted.
        self.addCleanup(self._restart_if_touched)
        for host in self.hosts:
            if host.has_file(self.original(host)):
                LOG.warning('%s: %s was left by a run that did not restore '
                            'it (killed?); restoring %s from it before '
                            'changing anything', host.name,
                            self.original(host), host.nova_conf)
                self._touched = True
                host.restore_original(host.nova_conf, self.original(host))
                self.leftovers.append(host.name)
        for host in self.hosts:
            text = host.read_text(host.nova_conf)
            changed = nova_conf.set_options(text, self.section, self.options)
            host.keep_original(host.nova_conf, self.original(host))
            self.addCleanup(self._put_back, host)
            self._touched = True
            host.write_text(host.nova_conf, changed)
        LOG.info('nova-compute on %s: [%s] %s', ', '.join(
            h.name for h in self.hosts), self.section, self.options)
        self._restart()

    def _put_back(self, host):
        if not host.restore_original(host.nova_conf, self.original(host)):
            raise lib_exc.TempestException(
                'the original of %s on %s (%s) is gone: the file keeps the '
                'options of the test' % (host.nova_conf, host.name,
                                         self.original(host)))

    def _restart_if_touched(self):
        if self._touched:
            self._restart()

    def _reports(self):
        services = self.services.list_services(
            binary='nova-compute')['services']
        return {s['host']: s for s in services}

    def _restart(self):
        started = time.monotonic()
        failures = []
        restarted = []
        for host in self.hosts:
            try:
                host.restart_nova_compute()
            except Exception as exc:
                LOG.error('restarting nova-compute on %s failed: %s',
                          host.name, exc)
                failures.append('%s: %s' % (host.name, exc))
            else:
                restarted.append(host)
        if restarted:
            try:
                self._wait_for_reports(restarted)
            except lib_exc.TimeoutException as exc:
                failures.append(str(exc))
        if failures:
            raise lib_exc.TempestException(
                'nova-compute restart: %s' % '; '.join(failures))
        # The cost of a configuration switch, for the suite's figures.
        LOG.info('nova-compute on %s restarted and reporting in %.1fs',
                 ', '.join(h.name for h in self.hosts),
                 time.monotonic() - started)

    def _wait_for_reports(self, hosts):
        # The old processes are gone once the restart commands return; a
        # newer report than the one seen now comes from the new ones.
        seen = {name: s['updated_at'] for name, s in self._reports().items()}

        def reported_again():
            now = self._reports()
            return all(
                h.name in now and now[h.name]['state'] == 'up' and
                now[h.name]['updated_at'] != seen.get(h.name)
                for h in hosts)

        if not test_utils.call_until_true(reported_again, self.timeout, 2):
            raise lib_exc.TimeoutException(
                'nova-compute on %s did not report within %ds of its '
                'restart' % (', '.join(h.name for h in hosts),
                             self.timeout))
