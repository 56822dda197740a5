"""Fixtures of the tempest tests: a nova configuration on the compute
hosts (the guest's console history is tests.console_log)."""

from concurrent import futures
import time

import fixtures
from oslo_log import log as logging
from tempest.lib.common.utils import test_utils
from tempest.lib import exceptions as lib_exc

from migration_tempest_plugin.hosts import nova_conf

LOG = logging.getLogger(__name__)

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
    takes a restart.  The hosts restart side by side, and the fixture
    returns when every new nova-compute serves: it answers an RPC call
    (the hypervisor's uptime, which nova-api asks the compute for), which
    a compute can only do after init_host(), and the old one is gone once
    the restart command returned.  Without `hypervisors_client` it waits
    for a newer service report instead, which nova sends 5 s after the
    start at the earliest.  Every host is restarted even when another's
    restart fails, and all failures are reported together.
    """

    def __init__(self, hosts, options, services_client, timeout,
                 section='libvirt', hypervisors_client=None):
        super().__init__()
        self.hosts = list(hosts)
        self.options = dict(options)
        self.services = services_client
        self.hypervisors = hypervisors_client
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

        def restart(host):
            try:
                host.restart_nova_compute()
            except Exception as exc:
                LOG.error('restarting nova-compute on %s failed: %s',
                          host.name, exc)
                return '%s: %s' % (host.name, exc)
            return None
        with futures.ThreadPoolExecutor(len(self.hosts)) as pool:
            outcomes = list(pool.map(restart, self.hosts))
        # In the hosts' order, whichever restart ended first.
        failures = [o for o in outcomes if o]
        restarted = [h for h, o in zip(self.hosts, outcomes) if not o]
        if restarted:
            try:
                if self.hypervisors is not None:
                    self._wait_until_serving(restarted)
                else:
                    self._wait_for_reports(restarted)
            except lib_exc.TimeoutException as exc:
                failures.append(str(exc))
        if failures:
            raise lib_exc.TempestException(
                'nova-compute restart: %s' % '; '.join(failures))
        # The cost of a configuration switch, for the suite's figures.
        LOG.info('nova-compute on %s restarted and serving in %.1fs',
                 ', '.join(h.name for h in self.hosts),
                 time.monotonic() - started)

    def _wait_until_serving(self, hosts):
        listed = self.hypervisors.list_hypervisors(detail=True)[
            'hypervisors']
        ids = {h['service']['host']: h['id'] for h in listed}
        deadline = time.monotonic() + self.timeout
        for host in hosts:
            if host.name not in ids:
                raise lib_exc.TimeoutException(
                    'no hypervisor of compute host %s' % host.name)
            while True:
                try:
                    # Queued for the compute's topic until it consumes it:
                    # one call waits for the new process's RPC server.
                    self.hypervisors.show_hypervisor_uptime(ids[host.name])
                    break
                except (lib_exc.ServerFault, lib_exc.NotImplemented) as exc:
                    if time.monotonic() > deadline:
                        raise lib_exc.TimeoutException(
                            'nova-compute on %s did not answer within %ds '
                            'of its restart: %s' % (host.name, self.timeout,
                                                    exc))
                    time.sleep(0.5)

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

        if not test_utils.call_until_true(reported_again, self.timeout,
                                          0.5):
            raise lib_exc.TimeoutException(
                'nova-compute on %s did not report within %ds of its '
                'restart' % (', '.join(h.name for h in hosts),
                             self.timeout))
