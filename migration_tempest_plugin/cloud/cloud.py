"""The lab cloud: bring it up, take it down, say how it is.

Each service is a module with devstack's verbs, as far as it needs them:
``venv.install``; ``mariadb.install/start/wait/init/stop``;
``ssh.configure/start/wait/stop``;
``rabbitmq.configure/start/wait/stop``; ``apis.configure/init/start/wait/
stop``; ``nova.configure/init/start_control/start_compute/wait_computes/
stop_control/stop_computes/cleanup``.  ``Cloud`` only sequences them (and
starts what it can in parallel, then waits).

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

import collections
import concurrent.futures
import contextlib
import json
import os
import secrets as secretslib
import shutil
import threading
import time

from migration_tempest_plugin.cloud import apis
from migration_tempest_plugin.cloud import base
from migration_tempest_plugin.cloud import cinder
from migration_tempest_plugin.cloud import config as cfg
from migration_tempest_plugin.cloud import mariadb
from migration_tempest_plugin.cloud import nova
from migration_tempest_plugin.cloud import rabbitmq
from migration_tempest_plugin.cloud import ssh
from migration_tempest_plugin.cloud import tempest_conf
from migration_tempest_plugin.cloud import venv as venvlib
from migration_tempest_plugin import common
from migration_tempest_plugin.integrity import guest as guestlib
from migration_tempest_plugin.lab import nodes
from migration_tempest_plugin import runtime as rt

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
# What `down` keeps under <state>/cloud.
KEEP = ('venv',)
# The lab storage mode that holds Ceph: part of the cloud's lab whatever
# the instances' storage, for cinder's volumes.
CEPH_MODE = 'rbd'
# The cloud's lab has every storage mode the cloud can put instances on,
# so that `cloud up --storage` switches a cloud that is up from one to
# another by restarting its computes (seconds), not the whole cloud.
LAB_MODES = tuple(dict.fromkeys(cfg.STORAGE_MODES + (CEPH_MODE,)))


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
            raise base.CloudError('storage must be one of %s, not %r' % (
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
        env['PATH'] = '%s:%s:%s' % (os.path.join(self.venv, 'bin'),
                                    common.SBIN_PATH,
                                    os.environ.get('PATH', ''))
        env['LC_ALL'] = env['LANG'] = 'C.UTF-8'
        env['LIBMOUNT_UTAB'] = os.path.join(self.state_dir, 'libmount',
                                            'utab')
        return env

    def meta(self):
        return rt.read_json(os.path.join(self.dir, 'cloud.json'))

    def save_meta(self, **changes):
        rt.update_json(os.path.join(self.dir, 'cloud.json'), **changes)

    def secrets(self):
        path = self.path('secrets.json')
        values = rt.read_json(path)
        if values:
            return values
        values = {k: secretslib.token_hex(12)
                  for k in ('db', 'rabbit', 'admin', 'member', 'service')}
        rt.write_file(path, json.dumps(values, indent=1) + '\n', 0o600)
        return values

    def lab_modes(self):
        """The lab's storage modes: every one the instances may use, and
        Ceph's."""
        return LAB_MODES

    def lab(self):
        if self._lab is None:
            self._lab = nodes.Lab(self.state_dir, modes=self.lab_modes())
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
            migration=meta.get('migration', {}), host=self.host,
            ceph=ceph_client())

    def run(self, argv, what, timeout=900, input=None, log=None):
        """Run a tool of the venv or the host, its output appended to
        logs/setup.log; return that output."""
        return rt.run_logged(argv, what, log or self.sup.log('setup'),
                             env=self.env(), timeout=timeout, input=input)

    def bin(self, name):
        return venvlib.bin_path(self.venv, name)

    def bootstrap(self, step, spec, timeout=900):
        """Run one openstacksdk step in the venv; return its JSON result."""
        spec = dict(spec, clouds_yaml=self.path('clouds.yaml'))
        spec_file = self.path('run', 'bootstrap-%s.json' % step)
        rt.write_file(spec_file, json.dumps(spec), 0o600)
        env = dict(self.env(), PYTHONPATH=PACKAGE_ROOT)
        out = rt.run_logged(
            [self.bin('python'), '-m', 'migration_tempest_plugin.cloud.'
             'bootstrap', step, spec_file], 'bootstrap ' + step,
            self.sup.log('bootstrap'), env=env, timeout=timeout,
            stdout_apart=True)
        lines = out.strip().splitlines()
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
            rt.write_file(path, text, mode)
            changed.add(service)

        def copy(service, src, name=None):
            src = os.path.join(self.venv, 'etc', src)
            with open(src) as f:
                put(service, name or os.path.basename(src), f.read())

        for service in (apis, nova, cinder):
            for folder, name, text in service.configure(s):
                put(folder, name, text)
            for folder, src in service.COPIED:
                copy(folder, src)
        rt.write_file(self.path('clouds.yaml'), cfg.clouds_yaml(s), 0o600)
        return changed

    # -- databases ------------------------------------------------------------

    def sync_databases(self, s):
        """Every schema, in parallel (separate databases)."""
        jobs = [lambda api=api: apis.init(self, s, api)
                for api in apis.WITH_DATABASE] + [lambda: nova.init(self, s),
                                                  lambda: cinder.init(self, s)]
        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result()

    # -- the nodes ------------------------------------------------------------

    def ensure_lab(self):
        """Bring the lab up unless it is; return (started, the seconds
        its Ceph took to come up, from the rbd mode's progress lines)."""
        lab = self.lab()
        status = lab.status()
        if status.get('up'):
            return False, 0.0
        self.say('cloud: bringing the lab up (storage %s)' % ', '.join(
            lab.modes))
        events = []

        def progress(text):
            events.append((time.monotonic(), text))
            self.say('lab: ' + text)
        lab.up(progress=progress)
        events.append((time.monotonic(), 'end'))
        return True, phase_seconds(events, is_ceph_step)

    def guest_files(self):
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
        meta = self.meta()
        # On a cloud that is up with another mode only the computes'
        # nova.conf changes: they restart, the rest stays as it is.
        switching = (meta.get('state') == 'up' and
                     meta.get('storage') not in (None, self.storage))
        if switching:
            self.say('cloud: switching the computes from %s to %s storage'
                     % (meta['storage'], self.storage))
        self.save_meta(storage=self.storage, state='starting')
        venv_box = {}

        def venv_job():
            t = time.monotonic()
            try:
                venvlib.install(self.venv, self.sup.log('venv'),
                                say=self.say)
            except Exception as exc:  # reported by the main thread
                venv_box['error'] = exc
            venv_box['seconds'] = round(time.monotonic() - t, 1)
        venv_thread = threading.Thread(target=venv_job, daemon=True)
        venv_thread.start()

        t = time.monotonic()
        lab_started, timings['ceph'] = self.ensure_lab()
        self.save_meta(lab_started=lab_started
                       or self.meta().get('lab_started', False))
        mark('lab', t)
        s = self.settings()
        if not base.address_is_local(s.host):
            raise base.CloudError('%s is not an address of this machine: the '
                                  'lab bridge is missing' % s.host)
        for sub in ('logs', 'pids', 'lock', 'run', 'glance', 'neutron',
                    'cinder'):
            os.makedirs(self.path(sub), exist_ok=True)

        t = time.monotonic()
        self.say('cloud: MariaDB and RabbitMQ')
        mariadb.install(self, s)
        mariadb.start(self, s)
        rabbitmq.configure(self, s)
        rabbitmq.start(self, s)
        self.say('cloud: the lab guest (kernel, initramfs, disk)')
        guest, disk = self.guest_files()
        hostnames = nova.node_hostnames(self)
        self.say('cloud: sshd on the nodes (nova moves disks over SSH)')
        ssh.configure(self, s)
        ssh.start(self, s)
        mariadb.wait(self, s)
        mariadb.init(self, s)
        mark('mariadb', t)

        venv_thread.join()
        timings['venv'] = venv_box.get('seconds')
        if 'error' in venv_box:
            raise base.CloudError('installing the venv: %s'
                                  % venv_box['error'])
        cinder.link_ceph_modules(self.venv)
        changed = self.write_configs(s)

        t = time.monotonic()
        synced = venvlib.fingerprint() + ':' + self.path('mysql')
        if self.meta().get('synced') != synced:
            self.say('cloud: database schemas and keystone bootstrap')
            self.sync_databases(s)
            self.save_meta(synced=synced)
        mark('db_sync', t)
        # The catalog, images and flavors live in those databases: once
        # made there, a later up (a storage switch) keeps them.
        ids = (meta.get('ids') if meta.get('bootstrapped') == synced
               else None)

        t = time.monotonic()
        self.say('cloud: APIs (gunicorn) on %s' % s.host)
        for api in cfg.APIS:
            apis.start(self, s, api, restart=('gunicorn-' + api in changed
                                              or cfg.API_CONF_DIR[api]
                                              in changed))
        rabbitmq.wait(self, s)
        apis.wait(self, s, 'keystone')
        if not ids:
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
        nova.start_control(self, s, restart='nova' in changed)
        cinder_started = time.monotonic()
        cinder.start(self, s, self.cinder_node(),
                     restart='cinder' in changed)
        for api in cfg.APIS:
            apis.wait(self, s, api)
        mark('apis', t)

        ssh.wait(self, s)
        ssh.check_between_nodes(self)
        t = time.monotonic()
        self.say('cloud: nova-compute on %s' % ', '.join(
            c.name for c in s.computes))
        restarts = []
        for compute, node in self.compute_nodes():
            # A compute's key is also the name of its configuration folder.
            key = nova.compute_key(compute)
            if self.sup.pid(key) and key in changed:
                restarts.append(compute.name)
            else:
                nova.start_compute(self, s, compute, node)
        if restarts:
            # Until each reports again: a compute that the service list
            # still shows up from before would look ready at once.
            with concurrent.futures.ThreadPoolExecutor(len(restarts)) as pool:
                list(pool.map(lambda name: nova.restart_compute(self, name),
                              restarts))
        if not ids:
            ids = self.bootstrap('images', images_spec(guest, disk))
            self.save_meta(ids=ids, bootstrapped=synced)
        t = time.monotonic()
        cinder.wait(self, s)
        mark('cinder_wait', t)
        timings['cinder'] = round(time.monotonic() - cinder_started, 1)
        t = time.monotonic()
        listing = nova.wait_computes(self, s, hostnames)
        mark('computes', t)

        conf = tempest_conf.write_workspace(s, ids, self.compute_nodes(),
                                            self.state_dir,
                                            ssh.tempest_key(self))
        total = round(time.monotonic() - started, 1)
        self.save_meta(state='up', ids=ids, hypervisors=hostnames,
                       timings=timings, up_seconds=total,
                       tempest_conf=conf)
        rss = self.rss()
        self.say('cloud: up in %.1fs (%s); %d processes, %.0f MiB RSS' % (
            total, ', '.join('%s %ss' % kv for kv in timings.items()),
            rss['processes'], rss['total_mib']))
        if switching:
            # Ceph and cinder were up already: what they hold now.
            rss = self.storage_rss()
            self.say('cloud: switched to %s storage; Ceph and cinder RSS '
                     '%.0f MiB (%s)' % (self.storage, sum(rss.values()),
                                        ', '.join('%s %.0f' % kv
                                                  for kv in rss.items())))
        else:
            self.say(format_storage_cost(timings, self.storage_rss()))
        self.say(format_services(listing))
        self.say('cloud: tempest.conf in %s' % conf)
        self.say('cloud: clients: OS_CLIENT_CONFIG_FILE=%s OS_CLOUD=lab-admin '
                 '%s compute service list' % (self.path('clouds.yaml'),
                                              self.bin('openstack')))
        return 0

    def cinder_node(self):
        """The lab node that runs cinder-volume (the first)."""
        return self.compute_nodes()[0][1]

    def restart_compute(self, name, wait=True):
        return nova.restart_compute(self, name, wait=wait)

    def stop_compute(self, name):
        compute, _node = self.compute_node(name)
        if not self.sup.stop(nova.compute_key(compute)):
            raise base.CloudError('nova-compute on %s would not stop' % name)

    def start_compute(self, name):
        compute, node = self.compute_node(name)
        nova.start_compute(self, self.settings(), compute, node)

    def kill_libvirtd(self, name):
        """libvirtd of a node ends as on a host that fails: SIGKILL, no
        clean-up (its guests' QEMUs are not in its session)."""
        _compute, node = self.compute_node(name)
        left = rt.terminate(rt.entries(self.lab().procs.members(
            node.proc_key)), hard=True)
        if left:
            raise base.CloudError('libvirtd on %s outlived SIGKILL: %s'
                                  % (name, left))
        self.lab().procs.forget(node.proc_key)

    def start_libvirtd(self, name):
        _compute, node = self.compute_node(name)
        node.start_libvirtd()
        node.wait_libvirtd()

    def compute_node(self, name):
        for compute, node in self.compute_nodes():
            if compute.name == name:
                return compute, node
        raise base.CloudError('no compute %r (have %s)' % (
            name, ', '.join(c.name for c, _n in self.compute_nodes())))

    # -- down -----------------------------------------------------------------

    def stop_services(self, names):
        """Stop `names` in parallel; return those that would not stop."""
        names = [n for n in names if n in self.sup.names()]
        if not names:
            return []
        with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
            return [name for name, ok in zip(names, pool.map(self.sup.stop,
                                                             names))
                    if not ok]

    def stop_all(self):
        """Stop every process of the cloud, tier by tier in the reverse of
        their start: the computes, then the control services and APIs,
        then RabbitMQ and MariaDB; return the names that would not stop."""
        left = (nova.stop_computes(self) + cinder.stop_volume(self)
                + ssh.stop(self))
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            for future in [pool.submit(nova.stop_control, self),
                           pool.submit(cinder.stop, self),
                           pool.submit(apis.stop, self)]:
                left += future.result()
        left += rabbitmq.stop(self) + mariadb.stop(self)
        # Whatever an older version started under another name.
        return left + self.stop_services(self.sup.names())

    def down(self, keep_lab=False):
        started = time.monotonic()
        left = self.stop_all()
        if left:
            raise base.CloudError('cloud down: these would not stop: %s'
                                  % ', '.join(left))
        if keep_lab:
            nova.cleanup(self)
        self.remove_rbd_images()
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

    def remove_rbd_images(self):
        """The cloud's RBD images go with the databases that knew them:
        Ceph's data lives in the lab's state folder and outlives a lab
        down.  Only while Ceph runs; a failure is said, and down goes on."""
        lab = self.lab()
        if not all(lab.procs.pid(k) for k in ceph_daemon_keys(lab)):
            return
        try:
            left = cinder.cleanup(lab, ceph_client())
        except Exception as exc:  # down must go on: say it and continue
            left = ['(all: %s)' % rt.one_line(str(exc))]
        for spec in left:
            self.say('cloud: RBD image %s stays in Ceph' % spec)

    # -- status ---------------------------------------------------------------

    def rss(self):
        pids = []
        for name in self.sup.names():
            pids += self.sup.members(name)
        total = rt.rss_bytes(pids)
        return {'processes': len(pids), 'total_mib': total / 2 ** 20}

    def storage_rss(self):
        """{process: MiB RSS} of Ceph's daemons (the lab's) and cinder's
        services (the cloud's)."""
        out = collections.OrderedDict()
        lab = self.lab()
        for key in ceph_daemon_keys(lab):
            out[key] = process_info(lab.procs, key)['rss_mib']
        for key in ('cinder-api',) + cinder.SERVICES:
            out[key] = process_info(self.sup, key)['rss_mib']
        return out

    def status(self):
        s = self.settings()
        out = {'state_dir': self.state_dir, 'storage': self.storage,
               'services': {}, 'up': True}
        out['lab_up'] = bool(self.lab().status().get('up'))
        local = base.address_is_local(s.host)
        expected = (list(mariadb.SERVICES + rabbitmq.SERVICES)
                    + list(cfg.APIS) + list(nova.CONTROL)
                    + list(cinder.SERVICES)
                    + [nova.compute_key(c) for c in s.computes]
                    + [ssh.service_key(c) for c in s.computes])
        for name in expected + [n for n in self.sup.names()
                                if n not in expected]:
            info = process_info(self.sup, name)
            if name in cfg.APIS:
                info['answers'] = local and base.http_answers(
                    apis.root(s, name))
            info['ok'] = bool(info['pid']) and info.get('answers', True)
            out['up'] = out['up'] and info['ok']
            out['services'][name] = info
        rss = self.rss()
        out['rss_total_mib'] = round(rss['total_mib'], 1)
        out['ceph'] = {}
        lab = self.lab()
        for key in ceph_daemon_keys(lab):
            out['ceph'][key] = process_info(lab.procs, key)
            out['up'] = out['up'] and bool(out['ceph'][key]['pid'])
        out['computes'] = None
        if out['services']['keystone']['ok'] and \
                out['services']['nova-api']['ok']:
            with contextlib.suppress(base.CloudError):
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


def ceph_client():
    """cfg.CephClient from the rbd lab storage mode's names."""
    from migration_tempest_plugin.lab.storage import rbd
    return cfg.CephClient(
        conf=rbd.NODE_CONF, user=rbd.CINDER, secret_uuid=rbd.SECRET_UUID,
        vms_pool=rbd.VMS_POOL, volumes_pool=rbd.VOLUMES_POOL,
        volumes2_pool=rbd.VOLUMES2_POOL, images_pool=rbd.IMAGES_POOL)


def images_spec(guest, disk):
    """What the bootstrap's images step makes: the lab guest's kernel,
    ramdisk and disk in glance, and the flavors the tests use."""
    return {
        'image_names': cfg.IMAGE_NAMES, 'kernel': guest.kernel,
        'ramdisk': guest.initrd, 'disk': disk,
        # A second agent writes the ephemeral disk of a flavor that has one
        # (vdb); without a vdb the guest notes it and goes on.
        'cmdline': guest.cmdline + ' ' + guestlib.SECOND_DISK_OPTION,
        'flavors': {
            'guest': {'name': cfg.FLAVOR_NAME, 'ram': 128, 'vcpus': 1,
                      'disk': 1},
            'alt': {'name': cfg.FLAVOR_ALT_NAME, 'ram': 192, 'vcpus': 1,
                    'disk': 1},
            # A resize that grows the root disk.
            'bigger': {'name': cfg.FLAVOR_BIGGER_NAME, 'ram': 128,
                       'vcpus': 1, 'disk': 2},
            # Several disks per guest: ephemeral and swap beside root.
            'disks': {'name': cfg.FLAVOR_DISKS_NAME, 'ram': 128, 'vcpus': 1,
                      'disk': 1, 'ephemeral': 1, 'swap': 16}}}


def process_info(procs, key):
    """PID, process count, RSS (MiB) and log of one service that `procs`
    (the cloud's or the lab's supervisor) runs."""
    pids = procs.members(key)
    return {'pid': procs.pid(key), 'processes': len(pids),
            'rss_mib': round(rt.rss_bytes(pids) / 2 ** 20, 1),
            'log': procs.log(key)}


def ceph_daemon_keys(lab):
    """Supervisor keys (the lab's) of Ceph's daemons."""
    from migration_tempest_plugin.lab import storage as storagelib
    return list(storagelib.mode(CEPH_MODE).daemon_keys(lab))


def is_ceph_step(text):
    """A progress line of the lab's Ceph (the rbd mode's up says
    'ceph: ...' before each of its steps)."""
    return text.startswith('ceph:')


def phase_seconds(events, belongs):
    """Seconds spent in the steps whose progress line `belongs`: each
    line's step lasts until the next line; `events` are (monotonic time,
    line), the last one the end."""
    total = 0.0
    for (t, text), (t_next, _next) in zip(events, events[1:]):
        if belongs(text):
            total += t_next - t
    return round(total, 1)


def format_storage_cost(timings, rss):
    """One line: what Ceph and cinder add to `cloud up` (seconds) and
    their memory (MiB RSS per process)."""
    return ('cloud: Ceph and cinder: %.1fs of up (Ceph %.1fs, cinder %.1fs: '
            'schema in parallel, services until they report); RSS %.0f MiB '
            '(%s)' % (
                (timings.get('ceph') or 0) + (timings.get('cinder') or 0),
                timings.get('ceph') or 0, timings.get('cinder') or 0,
                sum(rss.values()), ', '.join(
                    '%s %.0f' % kv for kv in rss.items())))


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
    if status.get('ceph'):
        lines.append('  Ceph (the lab\'s rbd mode), %.0f MiB RSS:' % sum(
            info['rss_mib'] for info in status['ceph'].values()))
        for name, info in status['ceph'].items():
            lines.append('  %-22s %-8s %6.1f MiB' % (
                name, info['pid'] or 'stopped', info['rss_mib']))
    if status.get('computes'):
        lines.append('')
        lines.append(format_services(status['computes']))
    if status.get('tempest_conf'):
        lines.append('tempest.conf: %s' % status['tempest_conf'])
    return '\n'.join(lines)
