"""The lab cloud: bring it up, take it down, say how it is.

Layout under the lab's state folder (default /var/tmp/migration-lab)::

    cloud/venv/          the services (kept by `down`; reinstalled only when
                         tools/cloud-constraints.txt changes)
    cloud/etc/SERVICE/   rendered configuration
    cloud/logs/NAME.log  every process's output
    cloud/pids/NAME.json PID and start time of every process
    cloud/mysql/         MariaDB's data and socket
    cloud/rabbitmq/      RabbitMQ's Mnesia, logs, cookie
    cloud/glance/        images
    cloud/nova/NODE/     nova's state_path per compute
    cloud/tempest/       the tempest workspace
    cloud/cloud.json     storage mode, ids, timings
    cloud/secrets.json   passwords (0600)
"""

import concurrent.futures
import contextlib
import datetime
import json
import os
import secrets as secretslib
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

from migration_tempest_plugin.cloud import config as cfg
from migration_tempest_plugin.cloud import tempest_conf
from migration_tempest_plugin.cloud import venv as venvlib
from migration_tempest_plugin import errors
from migration_tempest_plugin.lab import nodes
from migration_tempest_plugin import runtime as rt

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SBIN = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
CONTROL = ('nova-conductor', 'nova-scheduler')
INFRA = ('mariadb', 'epmd', 'rabbitmq')
# What `down` keeps under <state>/cloud.
KEEP = ('venv',)


class CloudError(errors.Error):
    """`cloud` failed: one message that says what and where."""


def _now_utc():
    return datetime.datetime.now(datetime.timezone.utc).replace(
        tzinfo=None).isoformat(timespec='seconds')


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def http_answers(url, timeout=3):
    """True when something speaks HTTP at `url` (any status below 500)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (OSError, ValueError):
        return False


def address_is_local(address):
    """True when `address` belongs to this machine (the lab bridge is up):
    checked by binding to it, so that no probe ever leaves the machine."""
    with socket.socket() as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


def tcp_answers(host, port, timeout=2):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Cloud:
    """The lab cloud on the lab of `state_dir`, with instances on the lab's
    `storage` mode ('local' or 'shared')."""

    def __init__(self, state_dir=nodes.DEFAULT_STATE_DIR, storage=None,
                 say=None, host=cfg.HOST):
        self.host = host
        self.state_dir = os.path.abspath(state_dir)
        self.dir = os.path.join(self.state_dir, 'cloud')
        self.say = say or (lambda text: print(text, flush=True))
        meta = self.meta()
        self.storage = storage or meta.get('storage') or 'local'
        if self.storage not in cfg.STORAGE_MODES:
            raise CloudError('storage must be one of %s, not %r' % (
                ', '.join(cfg.STORAGE_MODES), self.storage))
        self.venv = os.path.join(self.dir, 'venv')
        self.sup = rt.Supervisor(os.path.join(self.dir, 'pids'),
                                 os.path.join(self.dir, 'logs'),
                                 env=self.env())
        self._lab = None

    # -- small things ---------------------------------------------------------

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def env(self):
        """Environment of every service and tool: the venv first, sbin, a
        C locale, and nothing of the caller's Python (tox, venvs)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(('PYTHON', 'VIRTUAL_ENV', 'OS_', 'PIP_',
                                    'TEMPEST_'))}
        env['PATH'] = '%s:%s:%s' % (os.path.join(self.venv, 'bin'), SBIN,
                                    os.environ.get('PATH', ''))
        env['LC_ALL'] = env['LANG'] = 'C.UTF-8'
        env['LIBMOUNT_UTAB'] = os.path.join(self.state_dir, 'libmount',
                                            'utab')
        return env

    def meta(self):
        try:
            with open(os.path.join(self.dir, 'cloud.json')) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def save_meta(self, **changes):
        meta = self.meta()
        meta.update(changes)
        _write(os.path.join(self.dir, 'cloud.json'),
               json.dumps(meta, indent=1, sort_keys=True) + '\n')

    def secrets(self):
        path = self.path('secrets.json')
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            pass
        values = {k: secretslib.token_hex(12)
                  for k in ('db', 'rabbit', 'admin', 'member', 'service')}
        _write(path, json.dumps(values, indent=1) + '\n', 0o600)
        return values

    def lab(self):
        if self._lab is None:
            self._lab = nodes.Lab(self.state_dir, modes=(self.storage,))
        return self._lab

    def compute_nodes(self):
        """(ComputeNode, lab node) per lab node."""
        lab = self.lab()
        out = []
        for node in lab.nodes:
            # A folder of nova's own in the storage mode's path, so that
            # the lab's matrix (which uses instances/) and nova never meet.
            out.append((cfg.ComputeNode(
                name=node.netns, address=node.address,
                instances_path=os.path.join(lab.storage_path(self.storage),
                                            cfg.INSTANCES_DIR)), node))
        return out

    def settings(self):
        meta = self.meta()
        return cfg.Settings(
            cloud_dir=self.dir, secrets=self.secrets(), storage=self.storage,
            computes=[c for c, _n in self.compute_nodes()],
            migration=meta.get('migration', {}), host=self.host)

    def run(self, argv, what, timeout=900, input=None, log=None):
        """Run a tool of the venv or the host; its output goes to
        logs/setup.log; raise CloudError with its tail on failure."""
        log = log or self.sup.log('setup')
        os.makedirs(os.path.dirname(log), exist_ok=True)
        with open(log, 'ab') as out:
            out.write(('\n--- started %s: %s\n' % (time.strftime('%F %T'),
                                                   ' '.join(argv))).encode())
            out.flush()
            try:
                res = subprocess.run(
                    argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    input=input.encode() if input is not None else None,
                    stdin=None if input is not None else subprocess.DEVNULL,
                    env=self.env(), timeout=timeout, cwd='/')
            except subprocess.TimeoutExpired as exc:
                raise CloudError('%s: timed out after %ds' % (what, timeout)
                                 ) from exc
            except OSError as exc:
                raise CloudError('%s: cannot run %s: %s' % (what, argv[0],
                                                            exc)) from exc
            out.write(res.stdout)
        if res.returncode:
            text = res.stdout.decode('utf-8', 'replace').strip()
            raise CloudError('%s failed (exit %d); last lines:\n%s' % (
                what, res.returncode, '\n'.join(text.splitlines()[-15:])))
        return res.stdout.decode('utf-8', 'replace')

    def bin(self, name):
        return venvlib.bin_path(self.venv, name)

    def bootstrap(self, step, spec, timeout=900):
        """Run one openstacksdk step in the venv; return its JSON result."""
        spec = dict(spec, clouds_yaml=self.path('clouds.yaml'))
        spec_file = self.path('run', 'bootstrap-%s.json' % step)
        _write(spec_file, json.dumps(spec), 0o600)
        env = self.env()
        env['PYTHONPATH'] = PACKAGE_ROOT
        log = self.sup.log('bootstrap')
        with open(log, 'ab') as err:
            err.write(('\n--- started %s: bootstrap %s\n' % (
                time.strftime('%F %T'), step)).encode())
            err.flush()
            try:
                res = subprocess.run(
                    [self.bin('python'), '-m',
                     'migration_tempest_plugin.cloud.bootstrap', step,
                     spec_file], stdout=subprocess.PIPE, stderr=err,
                    stdin=subprocess.DEVNULL, env=env, timeout=timeout,
                    cwd='/')
            except subprocess.TimeoutExpired as exc:
                raise CloudError('bootstrap %s: timed out after %ds'
                                 % (step, timeout)) from exc
        if res.returncode:
            raise CloudError('bootstrap %s failed (exit %d); last lines of '
                             '%s:\n%s' % (step, res.returncode, log,
                                          rt.tail(log)))
        lines = res.stdout.decode().strip().splitlines()
        return json.loads(lines[-1]) if lines else {}

    # -- configuration --------------------------------------------------------

    def write_configs(self, s):
        """Render every configuration file; return the names of the
        services whose files changed."""
        changed = set()

        def put(service, name, text, mode=0o640):
            path = os.path.join(s.etc(service), name)
            try:
                with open(path) as f:
                    if f.read() == text:
                        return
            except OSError:
                pass
            _write(path, text, mode)
            changed.add(service)

        def copy(service, src, name=None):
            src = os.path.join(self.venv, 'etc', src)
            with open(src) as f:
                put(service, name or os.path.basename(src), f.read())

        put('keystone', 'keystone.conf', cfg.keystone_conf(s))
        put('placement', 'placement.conf', cfg.placement_conf(s))
        put('glance', 'glance-api.conf', cfg.glance_api_conf(s))
        copy('glance', 'glance/glance-api-paste.ini')
        put('neutron', 'neutron.conf', cfg.neutron_conf(s))
        put('neutron', 'ml2_conf.ini', cfg.ml2_conf(s))
        copy('neutron', 'neutron/api-paste.ini')
        put('nova', 'nova.conf', cfg.nova_conf(s))
        copy('nova', 'nova/api-paste.ini')
        copy('nova', 'nova/rootwrap.conf')
        for compute in s.computes:
            # A compute's nova.conf is rendered once per `up`; the tests
            # may change it between (restart-compute keeps their change).
            put('nova-compute-' + compute.name, 'nova.conf',
                cfg.nova_compute_conf(s, compute))
        for api in cfg.APIS:
            put('gunicorn-' + api, 'gunicorn.conf.py',
                cfg.gunicorn_conf(s, api))
        _write(self.path('clouds.yaml'), cfg.clouds_yaml(s), 0o600)
        return changed

    # -- MariaDB, RabbitMQ ----------------------------------------------------

    def start_mariadb(self, s):
        data = self.path('mysql', 'data')
        if not os.path.isdir(os.path.join(data, 'mysql')):
            self.save_meta(synced=None)
            os.makedirs(data, exist_ok=True)
            self.run(cfg.mariadb_install_argv(s), 'mariadb-install-db')
        self.sup.start('mariadb', cfg.mariadb_argv(s))

    def wait_mariadb(self, s):
        client = ['mariadb', '--no-defaults', '--socket=' + s.mysql_socket,
                  '-uroot']

        def ready():
            return subprocess.run(client + ['-e', 'SELECT 1'],
                                  capture_output=True, env=self.env(),
                                  timeout=10).returncode == 0
        self.sup.wait('mariadb', 'answered on %s' % s.mysql_socket, ready, 60)
        self.run(client, 'creating the databases',
                 input=cfg.mariadb_setup_sql(s))

    def start_rabbitmq(self, s):
        d = self.path('rabbitmq')
        for sub in ('mnesia', 'log'):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        _write(os.path.join(d, 'rabbitmq.conf'), cfg.rabbitmq_conf(s), 0o600)
        _write(os.path.join(d, 'rabbitmq-env.conf'), '')
        _write(os.path.join(d, 'enabled_plugins'), '[].\n')
        _write(os.path.join(d, 'advanced.config'), '[].\n')
        self.sup.start('epmd', cfg.epmd_argv())
        self.sup.wait('epmd', 'listened', lambda: tcp_answers(
            '127.0.0.1', cfg.EPMD_PORT), 20, interval=0.2)
        self.sup.start('rabbitmq', ['/usr/lib/rabbitmq/bin/rabbitmq-server'],
                       env=dict(self.env(), **cfg.rabbitmq_env(s)))

    def wait_rabbitmq(self, s):
        self.sup.wait('rabbitmq', 'listened on %s:%d' % (s.host,
                                                         cfg.RABBIT_PORT),
                      lambda: tcp_answers(s.host, cfg.RABBIT_PORT), 120)

    # -- databases and keystone -----------------------------------------------

    def sync_databases(self, s):
        """Every schema, in parallel (separate databases)."""
        def conf(service, name):
            return ['--config-file', os.path.join(s.etc(service), name)]
        kconf = conf('keystone', 'keystone.conf')
        nconf = conf('nova', 'nova.conf')

        def keystone():
            km = [self.bin('keystone-manage')] + kconf
            self.run(km + ['db_sync'], 'keystone-manage db_sync')
            for what in ('fernet_setup', 'credential_setup'):
                self.run(km + [what, '--keystone-user', 'root',
                               '--keystone-group', 'root'],
                         'keystone-manage ' + what)
            self.run(km + [
                'bootstrap', '--bootstrap-password', s.secrets['admin'],
                '--bootstrap-username', cfg.ADMIN_USER,
                '--bootstrap-project-name', cfg.ADMIN_PROJECT,
                '--bootstrap-role-name', 'admin',
                '--bootstrap-service-name', 'keystone',
                '--bootstrap-region-id', cfg.REGION,
                '--bootstrap-admin-url', s.auth_url,
                '--bootstrap-internal-url', s.auth_url,
                '--bootstrap-public-url', s.auth_url],
                'keystone-manage bootstrap')

        def placement():
            self.run([self.bin('placement-manage')]
                     + conf('placement', 'placement.conf') + ['db', 'sync'],
                     'placement-manage db sync')

        def glance():
            self.run([self.bin('glance-manage')]
                     + conf('glance', 'glance-api.conf') + ['db_sync'],
                     'glance-manage db_sync')

        def neutron():
            self.run([self.bin('neutron-db-manage')]
                     + conf('neutron', 'neutron.conf')
                     + conf('neutron', 'ml2_conf.ini')
                     + ['upgrade', 'heads'], 'neutron-db-manage upgrade')

        def nova():
            nm = [self.bin('nova-manage')] + nconf
            self.run(nm + ['api_db', 'sync'], 'nova-manage api_db sync')
            self.run(nm + ['cell_v2', 'map_cell0', '--database_connection',
                           cfg.db_url(s, 'nova_cell0')],
                     'nova-manage cell_v2 map_cell0')
            cells = self.run(nm + ['cell_v2', 'list_cells'],
                             'nova-manage cell_v2 list_cells')
            if ' cell1 ' not in cells:
                self.run(nm + ['cell_v2', 'create_cell', '--name', 'cell1',
                               '--verbose'], 'nova-manage cell_v2 create_cell')
            self.run(nm + ['db', 'sync'], 'nova-manage db sync')

        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            futures = [pool.submit(f) for f in (keystone, placement, glance,
                                                neutron, nova)]
            for future in futures:
                future.result()

    # -- services -------------------------------------------------------------

    def start_api(self, s, api, restart=False):
        name = api
        if restart:
            self.sup.stop(name)
        self.sup.start(name, [self.bin('gunicorn')],
                       env=dict(self.env(), **cfg.api_env(s, api)),
                       cwd=s.etc('gunicorn-' + api))

    def api_root(self, s, api):
        return 'http://%s:%d/' % (s.host, cfg.APIS[api][0])

    def wait_api(self, s, api, timeout=180):
        url = self.api_root(s, api)
        self.sup.wait(api, 'answered at ' + url,
                      lambda: http_answers(url), timeout)

    def start_control(self, s, restart=False):
        conf = os.path.join(s.etc('nova'), 'nova.conf')
        for name in CONTROL:
            if restart:
                self.sup.stop(name)
            self.sup.start(name, [self.bin(name), '--config-file', conf])

    def compute_key(self, compute):
        return 'nova-compute-' + compute.name

    def start_compute(self, s, compute, node, restart=False):
        key = self.compute_key(compute)
        if restart:
            self.sup.stop(key)
        os.makedirs(s.path('nova', compute.name, 'lock'), exist_ok=True)
        node.run(['mkdir', '-p', compute.instances_path])
        conf = os.path.join(s.nova_compute_dir(compute.name), 'nova.conf')
        return self.sup.start(key, node.argv([self.bin('nova-compute'),
                                              '--config-file', conf]))

    # -- the nodes ------------------------------------------------------------

    def ensure_lab(self):
        lab = self.lab()
        status = lab.status()
        if status.get('up'):
            return False
        self.say('cloud: bringing the lab up (storage %s)' % self.storage)
        lab.up(progress=lambda text: self.say('lab: ' + text))
        return True

    def node_hostnames(self):
        """The hostname each node's libvirtd reports (nova's hypervisor
        hostname and placement's resource provider name: they must differ).

        When the nodes share the host's UTS namespace, libvirtd reports
        the host's name on both; a per-node /etc/hosts bound inside the
        node's mount namespace then makes the short hostname resolve
        (canonically) to the node's own name."""
        names = {}
        for compute, node in self.compute_nodes():
            names[compute.name] = self._virsh_hostname(node)
        if len(set(names.values())) == len(names):
            return names
        for compute, node in self.compute_nodes():
            hosts = self.path('etc', 'hosts-' + compute.name)
            short = node.run(['uname', '-n']).stdout.strip()
            _write(hosts, '127.0.0.1 localhost\n::1 localhost '
                   'ip6-localhost ip6-loopback\n%s %s %s\n' % (
                       compute.address, compute.name, short))
            with open(hosts) as f:
                wanted = f.read()
            if node.run(['cat', '/etc/hosts']).stdout != wanted:
                node.run(['mount', '--bind', hosts, '/etc/hosts'])
            names[compute.name] = self._virsh_hostname(node)
        if len(set(names.values())) != len(names):
            raise CloudError(
                'the lab nodes report the same hostname to nova (%s); each '
                'node needs its own UTS namespace' % ', '.join(
                    '%s=%s' % kv for kv in sorted(names.items())))
        return names

    @staticmethod
    def _virsh_hostname(node):
        return node.run(['virsh', '-c', 'qemu:///system', 'hostname'],
                        timeout=60).stdout.strip()

    def guest_files(self):
        from migration_tempest_plugin.integrity import guest as guestlib
        out = self.path('guest')
        image = guestlib.build_guest(out)
        disk = os.path.join(out, 'disk.raw')
        guestlib.write_base_disk(disk)
        return image, disk

    # -- up -------------------------------------------------------------------

    def up(self):
        started = time.monotonic()
        timings = {}

        def mark(what, since):
            timings[what] = round(time.monotonic() - since, 1)

        os.makedirs(self.dir, exist_ok=True)
        self.save_meta(storage=self.storage, state='starting')
        venv_box = {}

        def venv_job():
            t = time.monotonic()
            try:
                venvlib.ensure(self.venv, self.sup.log('venv'),
                               say=self.say)
            except Exception as exc:  # reported by the main thread
                venv_box['error'] = exc
            venv_box['seconds'] = round(time.monotonic() - t, 1)
        venv_thread = threading.Thread(target=venv_job, daemon=True)
        venv_thread.start()

        t = time.monotonic()
        self.save_meta(lab_started=self.ensure_lab()
                       or self.meta().get('lab_started', False))
        mark('lab', t)
        s = self.settings()
        if not address_is_local(s.host):
            raise CloudError('%s is not an address of this machine: the lab '
                             'bridge is missing' % s.host)
        for sub in ('logs', 'pids', 'lock', 'run', 'glance', 'neutron'):
            os.makedirs(self.path(sub), exist_ok=True)

        t = time.monotonic()
        self.say('cloud: MariaDB and RabbitMQ')
        self.start_mariadb(s)
        self.start_rabbitmq(s)
        self.say('cloud: the lab guest (kernel, initramfs, disk)')
        guest, disk = self.guest_files()
        hostnames = self.node_hostnames()
        self.wait_mariadb(s)
        mark('mariadb', t)

        venv_thread.join()
        timings['venv'] = venv_box.get('seconds')
        if 'error' in venv_box:
            raise CloudError('installing the venv: %s' % venv_box['error'])
        changed = self.write_configs(s)

        t = time.monotonic()
        synced = venvlib.fingerprint() + ':' + self.path('mysql')
        if self.meta().get('synced') != synced:
            self.say('cloud: database schemas and keystone bootstrap')
            self.sync_databases(s)
            self.save_meta(synced=synced)
        mark('db_sync', t)

        t = time.monotonic()
        self.say('cloud: APIs (gunicorn) on %s' % s.host)
        for api in cfg.APIS:
            self.start_api(s, api, restart=('gunicorn-' + api in changed
                                            or cfg.API_CONF_DIR[api]
                                            in changed))
        self.wait_rabbitmq(s)
        self.wait_api(s, 'keystone')
        self.bootstrap('catalog', {
            'domain': cfg.DOMAIN, 'region': cfg.REGION,
            'service_project': cfg.SERVICE_PROJECT,
            'service_users': list(cfg.SERVICE_USERS),
            'service_password': s.secrets['service'],
            'member_project': cfg.MEMBER_PROJECT,
            'member_user': cfg.MEMBER_USER,
            'member_password': s.secrets['member'],
            'catalog': cfg.catalog(s)})
        # The conductor and the scheduler authenticate as nova at start.
        self.start_control(s, restart='nova' in changed)
        for api in cfg.APIS:
            self.wait_api(s, api)
        mark('apis', t)

        t = time.monotonic()
        self.say('cloud: nova-compute on %s' % ', '.join(
            c.name for c in s.computes))
        for compute, node in self.compute_nodes():
            self.start_compute(s, compute, node, restart=(
                'nova-compute-' + compute.name in changed))
        ids = self.bootstrap('images', {
            'image_names': cfg.IMAGE_NAMES, 'kernel': guest.kernel,
            'ramdisk': guest.initrd, 'disk': disk, 'cmdline': guest.cmdline,
            'flavors': {
                'guest': {'name': cfg.FLAVOR_NAME, 'ram': 128, 'vcpus': 1,
                          'disk': 1},
                'alt': {'name': cfg.FLAVOR_ALT_NAME, 'ram': 192, 'vcpus': 1,
                        'disk': 1}}})
        listing = self.wait_computes(s, hostnames)
        mark('computes', t)

        conf = tempest_conf.write_workspace(s, ids, self.compute_nodes(),
                                            self.state_dir)
        total = round(time.monotonic() - started, 1)
        self.save_meta(state='up', ids=ids, hypervisors=hostnames,
                       timings=timings, up_seconds=total,
                       tempest_conf=conf)
        rss = self.rss()
        self.say('cloud: up in %.1fs (%s); %d processes, %.0f MiB RSS' % (
            total, ', '.join('%s %ss' % kv for kv in timings.items()),
            rss['processes'], rss['total_mib']))
        self.say(format_services(listing))
        self.say('cloud: tempest.conf in %s' % conf)
        self.say('cloud: clients: OS_CLIENT_CONFIG_FILE=%s OS_CLOUD=lab-admin '
                 '%s compute service list' % (self.path('clouds.yaml'),
                                              self.bin('openstack')))
        return 0

    def wait_computes(self, s, hostnames, timeout=240):
        """Discover the computes into cell1 and wait until both are up,
        enabled and listed as hypervisors."""
        deadline = time.monotonic() + timeout
        nm = [self.bin('nova-manage'), '--config-file',
              os.path.join(s.etc('nova'), 'nova.conf')]
        hosts = [c.name for c in s.computes]
        while True:
            for compute, _node in self.compute_nodes():
                if not self.sup.pid(self.compute_key(compute)):
                    raise self.sup.failure(self.compute_key(compute),
                                           'exited')
            self.run(nm + ['cell_v2', 'discover_hosts'],
                     'nova-manage cell_v2 discover_hosts')
            left = max(5, int(deadline - time.monotonic()))
            for name in CONTROL:
                if not self.sup.pid(name):
                    raise self.sup.failure(name, 'exited')
            listing = self.bootstrap('computes', {
                'hosts': hosts, 'hypervisors': sorted(hostnames.values()),
                'control': list(CONTROL),
                'timeout': min(20, left)})
            if not listing.get('missing'):
                return listing
            if time.monotonic() > deadline:
                key = 'nova-compute-' + listing['missing'][0]
                if key in self.sup.names():
                    raise self.sup.failure(key, 'is not up in nova after %ds'
                                           % timeout)
                raise CloudError('computes not up in nova after %ds: %s' % (
                    timeout, ', '.join(listing['missing'])))

    # -- restart one compute --------------------------------------------------

    def restart_compute(self, name, timeout=180):
        """Restart one nova-compute with its nova.conf as it is now (the
        tests edit it), and wait until it reports again."""
        s = self.settings()
        for compute, node in self.compute_nodes():
            if compute.name == name:
                break
        else:
            raise CloudError('no compute %r (have %s)' % (
                name, ', '.join(c.name for c in s.computes)))
        since = _now_utc()
        time.sleep(1)
        self.start_compute(s, compute, node, restart=True)
        deadline = time.monotonic() + timeout
        while True:
            listing = self.bootstrap('status', {})
            for svc in listing['services']:
                if (svc['binary'] == 'nova-compute' and svc['host'] == name
                        and svc['state'] == 'up' and svc['updated_at']
                        and svc['updated_at'][:19] > since[:19]):
                    return listing
            if not self.sup.pid(self.compute_key(compute)):
                raise self.sup.failure(self.compute_key(compute), 'exited')
            if time.monotonic() > deadline:
                raise self.sup.failure(self.compute_key(compute),
                                       'did not report within %ds' % timeout)
            time.sleep(2)

    # -- down -----------------------------------------------------------------

    def stop_all(self):
        """Stop every process of the cloud: the computes, then the control
        services and APIs, then RabbitMQ, epmd and MariaDB, each tier in
        parallel; return the names of those that would not stop."""
        names = self.sup.names()
        computes = [n for n in names if n.startswith('nova-compute-')]
        middle = [n for n in list(CONTROL) + list(cfg.APIS) if n in names]
        infra = [n for n in INFRA if n in names]
        rest = [n for n in names if n not in computes + middle + infra]
        left = []
        for tier in (computes, middle + rest, ['rabbitmq', 'epmd'],
                     ['mariadb']):
            tier = [n for n in tier if n in names]
            with concurrent.futures.ThreadPoolExecutor(
                    max(1, len(tier))) as pool:
                for name, ok in zip(tier, pool.map(self.sup.stop, tier)):
                    if not ok:
                        left.append(name)
        return left

    def clean_nodes(self):
        """With the lab kept: remove nova's guests and instance files."""
        lab = self.lab()
        if not lab.status().get('up'):
            return
        for compute, node in self.compute_nodes():
            res = node.run(['virsh', '-c', 'qemu:///system', 'list', '--all',
                            '--name'], check=False)
            for dom in res.stdout.split():
                if dom.startswith('instance-'):
                    node.run(['virsh', '-c', 'qemu:///system', 'destroy',
                              dom], check=False)
                    node.run(['virsh', '-c', 'qemu:///system', 'undefine',
                              '--nvram', dom], check=False)
            with contextlib.suppress(Exception):
                shutil.rmtree(node.host_path(self.storage,
                                             cfg.INSTANCES_DIR),
                              ignore_errors=True)
            with contextlib.suppress(Exception):
                node.run(['umount', '/etc/hosts'], check=False)

    def down(self, keep_lab=False):
        started = time.monotonic()
        left = self.stop_all()
        if left:
            raise CloudError('cloud down: these would not stop: %s'
                             % ', '.join(left))
        if keep_lab:
            self.clean_nodes()
        if os.path.isdir(self.dir):
            for entry in os.listdir(self.dir):
                if entry in KEEP:
                    continue
                path = os.path.join(self.dir, entry)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
        if not keep_lab:
            self.say('cloud: taking the lab down')
            nodes.Lab(self.state_dir).down(
                progress=lambda text: self.say('lab: ' + text))
        self.say('cloud: down in %.1fs (venv kept in %s)' % (
            time.monotonic() - started, self.venv))
        return 0

    # -- status ---------------------------------------------------------------

    def rss(self):
        pids = []
        for name in self.sup.names():
            pids += self.sup.members(name)
        total = rt.rss_bytes(pids)
        return {'processes': len(pids), 'total_mib': total / 2 ** 20}

    def status(self):
        s = self.settings()
        out = {'state_dir': self.state_dir, 'storage': self.storage,
               'services': {}, 'up': True}
        out['lab_up'] = bool(self.lab().status().get('up'))
        local = address_is_local(s.host)
        expected = list(INFRA) + list(cfg.APIS) + list(CONTROL) + [
            self.compute_key(c) for c in s.computes]
        for name in expected + [n for n in self.sup.names()
                                if n not in expected]:
            pids = self.sup.members(name)
            info = {'pid': self.sup.pid(name), 'processes': len(pids),
                    'rss_mib': round(rt.rss_bytes(pids) / 2 ** 20, 1),
                    'log': self.sup.log(name)}
            if name in cfg.APIS:
                info['answers'] = local and http_answers(
                    self.api_root(s, name))
            info['ok'] = bool(info['pid']) and info.get('answers', True)
            out['up'] = out['up'] and info['ok']
            out['services'][name] = info
        rss = self.rss()
        out['rss_total_mib'] = round(rss['total_mib'], 1)
        out['computes'] = None
        if out['services']['keystone']['ok'] and \
                out['services']['nova-api']['ok']:
            with contextlib.suppress(CloudError):
                out['computes'] = self.bootstrap('status', {}, timeout=60)
        if out['computes'] is None:
            out['up'] = False
        else:
            for c in s.computes:
                if not any(x['binary'] == 'nova-compute' and
                           x['host'] == c.name and x['state'] == 'up'
                           for x in out['computes']['services']):
                    out['up'] = False
        out['up'] = out['up'] and out['lab_up']
        meta = self.meta()
        out['tempest_conf'] = meta.get('tempest_conf')
        out['ids'] = meta.get('ids')
        return out


def format_services(listing):
    """`openstack compute service list` and `hypervisor list`, as text."""
    rows = [('Binary', 'Host', 'Zone', 'Status', 'State', 'Updated At')]
    for svc in listing.get('services', []):
        rows.append((svc['binary'], svc['host'], svc['zone'] or '',
                     svc['status'], svc['state'], svc['updated_at'] or ''))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ['  '.join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()
             for r in rows]
    lines.append('')
    lines.append('Hypervisors: ' + ', '.join(
        '%s (%s, %s)' % (h['name'], h['state'], h['status'])
        for h in listing.get('hypervisors', [])))
    return '\n'.join(lines)


def format_status(status):
    lines = ['cloud %s (state %s, storage %s, lab %s, %.0f MiB RSS)' % (
        'UP' if status['up'] else 'NOT UP', status['state_dir'],
        status['storage'], 'up' if status['lab_up'] else 'down',
        status['rss_total_mib'])]
    for name, info in status['services'].items():
        extra = ''
        if 'answers' in info:
            extra = ' answers' if info['answers'] else ' NOT ANSWERING'
        lines.append('  %-22s %-8s %6.1f MiB%s' % (
            name, info['pid'] or 'stopped', info['rss_mib'], extra))
    if status.get('computes'):
        lines.append('')
        lines.append(format_services(status['computes']))
    if status.get('tempest_conf'):
        lines.append('tempest.conf: %s' % status['tempest_conf'])
    return '\n'.join(lines)
