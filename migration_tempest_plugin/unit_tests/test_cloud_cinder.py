"""Unit tests of cinder and Ceph in the lab cloud: cinder.conf, nova's RBD
and [cinder] options, the tempest.conf and compute hosts file of each
storage mode, and the figures `cloud up` prints.

Nothing here needs root, the lab, Ceph or the cloud's venv.
"""

import os
import tempfile

import testtools
import yaml

from migration_tempest_plugin.cloud import apis
from migration_tempest_plugin.cloud import cinder
from migration_tempest_plugin.cloud import cloud as cloudlib
from migration_tempest_plugin.cloud import config as cfg
from migration_tempest_plugin.cloud import nova
from migration_tempest_plugin.cloud import tempest_conf
from migration_tempest_plugin.unit_tests import test_cloud_config as base

CEPH = cfg.CephClient(conf='/etc/ceph/ceph.conf', user='cinder',
                      secret_uuid='5ec2e7a1-0000-4000-8000-000000000001',
                      vms_pool='vms', volumes_pool='volumes',
                      volumes2_pool='volumes2', images_pool='images')


def settings(storage='local', **kwargs):
    return base.settings(storage, ceph=CEPH, **kwargs)


class TestCinderConf(testtools.TestCase):

    def conf(self, storage='local'):
        return cfg.parse_ini(cinder.cinder_conf(settings(storage)))

    def test_rbd_backend(self):
        conf = self.conf()
        self.assertEqual('ceph,ceph2', conf['DEFAULT']['enabled_backends'])
        backend = conf['ceph']
        self.assertEqual('cinder.volume.drivers.rbd.RBDDriver',
                         backend['volume_driver'])
        self.assertEqual('ceph', backend['volume_backend_name'])
        self.assertEqual('volumes', backend['rbd_pool'])
        self.assertEqual('/etc/ceph/ceph.conf', backend['rbd_ceph_conf'])
        self.assertEqual('cinder', backend['rbd_user'])
        self.assertEqual(CEPH.secret_uuid, backend['rbd_secret_uuid'])

    def test_second_backend_on_its_own_pool(self):
        # Between pools the RBD driver's migration refuses an attached
        # volume: cinder then moves it through nova's swap.
        second = self.conf()['ceph2']
        self.assertEqual('ceph2', second['volume_backend_name'])
        self.assertEqual('volumes2', second['rbd_pool'])
        self.assertEqual(CEPH.secret_uuid, second['rbd_secret_uuid'])
        self.assertEqual('lab-control@ceph2', cinder.backend_host('ceph2'))

    def test_same_backend_on_every_storage(self):
        self.assertEqual(self.conf('local')['ceph'],
                         self.conf('rbd')['ceph'])

    def test_privsep_helper_for_every_context_cinder_uses(self):
        # cinder.privsep.sys_admin_pctxt and os-brick's read these
        # sections; a missing one falls back to sudo cinder-rootwrap.
        conf = self.conf()
        for section in ('cinder_sys_admin', 'privsep_osbrick'):
            self.assertEqual('/state/cloud/venv/bin/privsep-helper',
                             conf[section]['helper_command'])

    def test_services_and_auth(self):
        conf = self.conf()
        d = conf['DEFAULT']
        self.assertEqual('lab-control', d['host'])
        self.assertEqual('keystone', d['auth_strategy'])
        self.assertEqual('rabbit://lab:r%40bbit@10.254.0.254:5672/',
                         d['transport_url'])
        self.assertEqual('/state/cloud/etc/cinder/api-paste.ini',
                         d['api_paste_config'])
        self.assertIn('/cinder?unix_socket=', conf['database']['connection'])
        self.assertEqual('cinder', conf['keystone_authtoken']['username'])
        self.assertEqual('true',
                         conf['service_user']['send_service_user_token'])
        self.assertEqual('cinder', conf['service_user']['username'])
        self.assertEqual('nova', conf['nova']['username'])
        self.assertEqual('RegionOne', conf['nova']['region_name'])
        self.assertEqual('lab-control@ceph', cinder.backend_host())

    def test_everything_lives_under_the_cloud_folder_or_etc_ceph(self):
        for line in cinder.cinder_conf(settings()).splitlines():
            for word in line.replace('=', ' ').split():
                if word.startswith('file://'):
                    word = word[len('file://'):]
                if word.startswith('/') and word != '/':
                    self.assertTrue(word.startswith(('/state/cloud/',
                                                     '/etc/ceph/')), line)

    def test_the_api_under_gunicorn_loads_our_wsgi_module(self):
        s = settings()
        ns = {}
        exec(compile(apis.gunicorn_conf(s, 'cinder-api'), 'g.py', 'exec'),
             ns)
        self.assertEqual(['10.254.0.254:8776'], ns['bind'])
        self.assertEqual(
            'migration_tempest_plugin.cloud.cinder_wsgi:application',
            ns['wsgi_app'])
        env = apis.api_env(s, 'cinder-api')
        self.assertEqual('/state/cloud/etc/cinder',
                         env['OS_CINDER_CONFIG_DIR'])
        self.assertTrue(os.path.isfile(os.path.join(
            env['PYTHONPATH'], 'migration_tempest_plugin', 'cloud',
            'cinder_wsgi.py')))
        self.assertIn('cinder', cfg.DATABASES)
        self.assertIn('cinder', cfg.SERVICE_USERS)


class TestNovaWithCeph(testtools.TestCase):

    def compute(self, storage):
        s = settings(storage)
        return cfg.parse_ini(nova.nova_compute_conf(s, s.computes[0]))

    def test_rbd_storage_puts_instance_disks_in_vms(self):
        lv = self.compute('rbd')['libvirt']
        self.assertEqual('rbd', lv['images_type'])
        self.assertEqual('vms', lv['images_rbd_pool'])
        self.assertEqual('/etc/ceph/ceph.conf', lv['images_rbd_ceph_conf'])
        self.assertEqual('cinder', lv['rbd_user'])
        self.assertEqual(CEPH.secret_uuid, lv['rbd_secret_uuid'])
        # The instances path stays each node's own folder.
        self.assertEqual('/srv/lab/rbd/nova',
                         self.compute('rbd')['DEFAULT']['instances_path'])

    def test_file_storages_keep_file_disks_but_attach_rbd_volumes(self):
        for storage in ('local', 'shared'):
            lv = self.compute(storage)['libvirt']
            self.assertNotIn('images_type', lv)
            self.assertNotIn('images_rbd_pool', lv)
            self.assertEqual('cinder', lv['rbd_user'])
            self.assertEqual(CEPH.secret_uuid, lv['rbd_secret_uuid'])

    def test_cinder_section(self):
        for text in (nova.nova_conf(settings()),
                     nova.nova_compute_conf(settings(),
                                            settings().computes[1])):
            c = cfg.parse_ini(text)['cinder']
            self.assertEqual('RegionOne', c['os_region_name'])
            self.assertEqual('volumev3::publicURL', c['catalog_info'])
            self.assertEqual('password', c['auth_type'])
            self.assertEqual('nova', c['username'])
            self.assertNotIn('region_name', c)


class TestTempestConfWithCinder(testtools.TestCase):

    def conf(self, storage):
        return cfg.parse_ini(tempest_conf.tempest_conf(
            settings(storage), base.IDS, '/ws/etc/compute-hosts.yaml',
            '/ws'))

    def test_volumes_on_every_storage(self):
        for storage in cfg.STORAGE_MODES:
            conf = self.conf(storage)
            self.assertEqual('true', conf['service_available']['cinder'])
            v = conf['volume']
            self.assertEqual('block-storage', v['catalog_type'])
            self.assertEqual('ceph', v['storage_protocol'])
            self.assertEqual('ceph,ceph2', v['backend_names'])
            self.assertEqual('true',
                             conf['volume-feature-enabled']['multi_backend'])
            vfe = conf['volume-feature-enabled']
            self.assertEqual('false', vfe['backup'])
            self.assertEqual('true', vfe['snapshot'])
            cfe = conf['compute-feature-enabled']
            self.assertEqual('true', cfe['volume_multiattach'])
            self.assertEqual('true', cfe['swap_volume'])
            self.assertEqual('true', cfe['volume_backed_live_migration'])
            self.assertEqual('2', conf['compute']['min_compute_nodes'])

    def test_rbd_is_plain_live_migration(self):
        if 'rbd' not in cfg.STORAGE_MODES:
            self.skipTest('the rbd storage mode is not registered')
        conf = self.conf('rbd')
        self.assertEqual('false', conf['compute-feature-enabled'][
            'block_migration_for_live_migration'])
        self.assertEqual('rbd', conf['migration']['storage'])
        self.assertEqual('config-drive-block-migration,rolled-back-to-error,'
                         'force-complete-ignored-in-disk-copy',
                         conf['migration']['known_bugs'])

    def test_compute_hosts_say_where_rbd_disks_are(self):
        class Node:
            name = 'n1'
            libvirtd_log = '/l'
            uri = 'qemu+tcp://10.254.0.1/system'

            def argv(self, argv):
                return argv
        for storage, images_type in (('local', 'default'), ('rbd', 'rbd')):
            s = settings(storage)
            h = yaml.safe_load(tempest_conf.compute_hosts(
                s, [(s.computes[0], Node())], '/state'))['lab-n1']
            self.assertEqual(images_type, h['images_type'])
            self.assertEqual('vms', h['rbd_pool'])
            self.assertEqual('cinder', h['rbd_user'])
            self.assertEqual('/etc/ceph/ceph.conf', h['rbd_ceph_conf'])


class TestFigures(testtools.TestCase):

    def test_phase_seconds_counts_the_ceph_steps(self):
        events = [(0.0, 'network'), (1.0, 'storage: local, rbd'),
                  (1.5, 'ceph: mon a mkfs'), (3.0, 'ceph: mgr x'),
                  (4.0, 'ceph: up in 2.5s'), (4.5, 'lab up in 4.5s'),
                  (5.0, 'end')]
        self.assertEqual(3.0, cloudlib.phase_seconds(
            events, cloudlib.is_ceph_step))
        self.assertEqual(0.0, cloudlib.phase_seconds([], bool))

    def test_cost_line(self):
        line = cloudlib.format_storage_cost(
            {'ceph': 20.0, 'cinder': 30.5},
            {'ceph-mon': 48.0, 'cinder-volume': 120.4})
        self.assertIn('50.5s of up (Ceph 20.0s, cinder 30.5s', line)
        self.assertIn('RSS 168 MiB (ceph-mon 48, cinder-volume 120)', line)


class TestCephModules(testtools.TestCase):

    def test_links_debian_builds_into_the_venv(self):
        with tempfile.TemporaryDirectory() as d:
            dist = os.path.join(d, 'dist')
            site = os.path.join(d, 'venv', 'lib', 'python3.11',
                                'site-packages')
            os.makedirs(dist)
            os.makedirs(site)
            for name in ('rados', 'rbd'):
                open(os.path.join(
                    dist, name + '.cpython-311-x86_64-linux-gnu.so'),
                    'w').close()
            links = cinder.link_ceph_modules(os.path.join(d, 'venv'), dist)
            again = cinder.link_ceph_modules(os.path.join(d, 'venv'), dist)
            self.assertEqual(links, again)
            self.assertEqual(2, len(links))
            for link in links:
                self.assertTrue(os.path.islink(link))
                self.assertTrue(os.readlink(link).startswith(dist))

    def test_missing_debian_package_is_one_clear_error(self):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, 'venv', 'lib', 'python3.11',
                                     'site-packages'))
            exc = self.assertRaises(
                cinder.base.CloudError, cinder.link_ceph_modules,
                os.path.join(d, 'venv'), os.path.join(d, 'nothing'))
            self.assertIn('apt-get install python3-rados python3-rbd',
                          str(exc))


class TestCleanup(testtools.TestCase):

    def test_only_the_clouds_images_go(self):
        uuid = '0b6c1a2e-3f4d-4e5f-8a9b-0c1d2e3f4a5b'
        names = [uuid + '_disk', uuid + '_disk.local', uuid + '_disk.swap',
                 'volume-' + uuid, 'volume-%s.deleted' % uuid,
                 'instances_case-1_disk', 'lab-base', uuid]
        self.assertEqual(names[:5], cinder.cloud_images(names))

    def test_down_removes_images_only_while_ceph_runs_and_never_fails(self):
        from unittest import mock
        said = []
        c = cloudlib.Cloud.__new__(cloudlib.Cloud)
        c.say = said.append
        lab = mock.Mock()
        c._lab = lab
        self.patch(cloudlib, 'ceph_daemon_keys', lambda lab: ['ceph-mon'])
        calls = []
        self.patch(cinder, 'cleanup',
                   lambda lab, ceph: calls.append(lab) or ['vms/x_disk'])
        lab.procs.pid.return_value = None
        c.remove_rbd_images()
        self.assertEqual([], calls)
        lab.procs.pid.return_value = 42
        c.remove_rbd_images()
        self.assertEqual([lab], calls)
        self.assertEqual(['cloud: RBD image vms/x_disk stays in Ceph'], said)

        def boom(lab, ceph):
            raise cinder.base.CloudError('rbd: no\nanswer')
        self.patch(cinder, 'cleanup', boom)
        c.remove_rbd_images()
        self.assertIn('rbd: no | answer', said[-1])
