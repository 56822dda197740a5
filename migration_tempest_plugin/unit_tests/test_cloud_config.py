"""Unit tests of the lab cloud's rendering: configuration files, the
tempest workspace, the venv fingerprint and the process table.

Nothing here needs root, a network, the lab or the cloud's venv.
"""

import os
import shlex
import tempfile

import testtools
import yaml

from migration_tempest_plugin.cloud import apis
from migration_tempest_plugin.cloud import config as cfg
from migration_tempest_plugin.cloud import mariadb
from migration_tempest_plugin.cloud import nova
from migration_tempest_plugin.cloud import rabbitmq
from migration_tempest_plugin.cloud import ssh as cloud_ssh
from migration_tempest_plugin.cloud import tempest_conf
from migration_tempest_plugin.cloud import venv as venvlib

SECRETS = {'db': 'd/b?pw', 'rabbit': 'r@bbit', 'admin': 'adminpw',
           'member': 'memberpw', 'service': 'servicepw'}


def settings(storage='local', **kwargs):
    computes = [cfg.ComputeNode('lab-n1', '10.254.0.1',
                                '/srv/lab/%s/nova' % storage),
                cfg.ComputeNode('lab-n2', '10.254.0.2',
                                '/srv/lab/%s/nova' % storage)]
    return cfg.Settings(cloud_dir='/state/cloud', secrets=dict(SECRETS),
                        storage=storage, computes=computes, **kwargs)


IDS = {'image_id': 'img-1', 'kernel_id': 'k', 'ramdisk_id': 'r',
       'flavors': {'guest': 'fl-1', 'alt': 'fl-2'}}


class TestIni(testtools.TestCase):

    def test_round_trip(self):
        text = cfg.render_ini({'DEFAULT': {'a': True, 'b': [1, 2],
                                           'skip': None},
                               'x': {'c': 'd=e'}}, 'head\nline')
        self.assertTrue(text.startswith('# head\n# line\n'))
        parsed = cfg.parse_ini(text)
        self.assertEqual({'a': 'true', 'b': '1,2'}, dict(parsed['DEFAULT']))
        self.assertEqual({'c': 'd=e'}, dict(parsed['x']))

    def test_refuses_multiline(self):
        self.assertRaises(ValueError, cfg.render_ini, {'s': {'k': 'a\nb'}})

    def test_parse_refuses_garbage(self):
        self.assertRaises(ValueError, cfg.parse_ini, '[s]\nno equals\n')


class TestUrls(testtools.TestCase):

    def test_db_url_uses_the_socket_and_quotes_the_password(self):
        url = cfg.db_url(settings(), 'nova')
        self.assertEqual('mysql+pymysql://lab:d%2Fb%3Fpw@localhost/nova?'
                         'unix_socket=/state/cloud/mysql/mysqld.sock&'
                         'charset=utf8', url)

    def test_transport_url_on_the_lab_address(self):
        self.assertEqual('rabbit://lab:r%40bbit@10.254.0.254:5672/',
                         cfg.transport_url(settings()))

    def test_catalog_has_every_api_but_keystone(self):
        cat = cfg.catalog(settings())
        self.assertEqual(
            [('placement', 'placement', 'http://10.254.0.254:8778'),
             ('glance', 'image', 'http://10.254.0.254:9292'),
             ('neutron', 'network', 'http://10.254.0.254:9696'),
             ('nova', 'compute', 'http://10.254.0.254:8774/v2.1'),
             ('cinder', 'block-storage',
              'http://10.254.0.254:8776/v3/$(project_id)s')], cat)


class TestServiceConfigs(testtools.TestCase):

    def test_every_service_listens_only_on_the_lab_address(self):
        s = settings()
        for api in cfg.APIS:
            text = apis.gunicorn_conf(s, api)
            ns = {}
            exec(compile(text, 'gunicorn.conf.py', 'exec'), ns)
            self.assertEqual(['10.254.0.254:%d' % cfg.APIS[api][0]],
                             ns['bind'])
            self.assertEqual(cfg.APIS[api][1], ns['wsgi_app'])
            self.assertEqual(1, ns['workers'])
        rabbit = rabbitmq.conf(s)
        self.assertIn('listeners.tcp.1 = 10.254.0.254:5672', rabbit)
        self.assertIn('loopback_users = none', rabbit)
        self.assertIn('--skip-networking', mariadb.argv(s))
        env = rabbitmq.env(s)
        self.assertIn('{127,0,0,1}',
                      env['RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS'])
        self.assertIn('-start_epmd false',
                      env['RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS'])
        self.assertEqual('127.0.0.1', env['ERL_EPMD_ADDRESS'])
        self.assertEqual(['epmd', '-address', '127.0.0.1', '-port',
                          str(cfg.EPMD_PORT)], rabbitmq.epmd_argv())

    def test_everything_lives_under_the_cloud_folder(self):
        s = settings()
        texts = [apis.keystone_conf(s), apis.placement_conf(s),
                 apis.glance_api_conf(s), apis.neutron_conf(s),
                 nova.nova_conf(s), rabbitmq.conf(s)]
        texts += [nova.nova_compute_conf(s, c) for c in s.computes]
        for text in texts:
            for line in text.splitlines():
                for word in line.replace('=', ' ').split():
                    if word.startswith('/') and word != '/' and \
                            not word.startswith('/srv/lab/'):
                        self.assertTrue(word.startswith('/state/cloud/'),
                                        line)

    def test_keystone(self):
        conf = cfg.parse_ini(apis.keystone_conf(settings()))
        self.assertEqual('fernet', conf['token']['provider'])
        self.assertEqual('/state/cloud/keystone/fernet-keys',
                         conf['fernet_tokens']['key_repository'])
        self.assertIn('/keystone?', conf['database']['connection'])

    def test_glance_file_store(self):
        conf = cfg.parse_ini(apis.glance_api_conf(settings()))
        self.assertEqual('fs:file', conf['DEFAULT']['enabled_backends'])
        self.assertEqual('/state/cloud/glance/images',
                         conf['fs']['filesystem_store_datadir'])
        self.assertEqual('glance', conf['keystone_authtoken']['username'])

    def test_neutron_is_api_only(self):
        conf = cfg.parse_ini(apis.neutron_conf(settings()))
        self.assertEqual('ml2', conf['DEFAULT']['core_plugin'])
        self.assertEqual('router', conf['DEFAULT']['service_plugins'])
        self.assertEqual('0', conf['DEFAULT']['rpc_workers'])
        ml2 = cfg.parse_ini(apis.ml2_conf(settings()))
        self.assertEqual('', ml2['ml2']['mechanism_drivers'])
        env = apis.api_env(settings(), 'neutron')
        self.assertEqual('neutron.conf;ml2_conf.ini',
                         env['OS_NEUTRON_CONFIG_FILES'])

    def test_nova_control(self):
        conf = cfg.parse_ini(nova.nova_conf(settings()))
        self.assertIn('/nova_api?', conf['api_database']['connection'])
        self.assertIn('/nova?', conf['database']['connection'])
        self.assertEqual('-1', conf['scheduler'][
            'discover_hosts_in_cells_interval'])
        self.assertEqual('lab-control', conf['DEFAULT']['host'])
        self.assertNotIn('libvirt', conf)

    def test_nova_compute(self):
        s = settings('shared')
        conf = cfg.parse_ini(nova.nova_compute_conf(s, s.computes[1]))
        self.assertEqual('lab-n2', conf['DEFAULT']['host'])
        self.assertEqual('10.254.0.2', conf['DEFAULT']['my_ip'])
        self.assertEqual('/srv/lab/shared/nova',
                         conf['DEFAULT']['instances_path'])
        self.assertEqual('/state/cloud/nova/lab-n2',
                         conf['DEFAULT']['state_path'])
        lv = conf['libvirt']
        self.assertEqual('qemu', lv['virt_type'])
        self.assertEqual('tcp', lv['live_migration_scheme'])
        self.assertEqual('10.254.0.2', lv['live_migration_inbound_addr'])
        self.assertEqual('false', lv['live_migration_tunnelled'])
        self.assertEqual('1', lv['live_migration_parallel_connections'])
        self.assertNotIn('database', conf)
        self.assertNotIn('api_database', conf)
        self.assertEqual('/state/cloud/venv/bin/privsep-helper',
                         conf['nova_sys_admin']['helper_command'])

    def test_nova_compute_migration_overrides(self):
        s = settings(migration={'live_migration_permit_post_copy': True})
        conf = cfg.parse_ini(nova.nova_compute_conf(s, s.computes[0]))
        self.assertEqual('true',
                         conf['libvirt']['live_migration_permit_post_copy'])
        conf = cfg.parse_ini(nova.nova_compute_conf(
            s, s.computes[0], {'live_migration_tunnelled': True}))
        self.assertEqual('true', conf['libvirt']['live_migration_tunnelled'])
        self.assertEqual('false',
                         conf['libvirt']['live_migration_permit_post_copy'])
        self.assertRaises(ValueError, cfg.migration_options, {'nope': 1})

    def test_mariadb_setup_sql(self):
        sql = mariadb.setup_sql(cfg.Settings(
            cloud_dir='/c', secrets=dict(SECRETS, db="it's")))
        for db in cfg.DATABASES:
            self.assertIn('CREATE DATABASE IF NOT EXISTS %s ' % db, sql)
            self.assertIn('ON %s.* TO' % db, sql)
        self.assertIn("IDENTIFIED BY 'it\\'s'", sql)

    def test_clouds_yaml(self):
        clouds = yaml.safe_load(cfg.clouds_yaml(settings()))['clouds']
        self.assertEqual('admin', clouds['lab-admin']['auth']['username'])
        self.assertEqual('memberpw', clouds['lab-member']['auth']['password'])
        self.assertEqual('http://10.254.0.254:5000/v3',
                         clouds['lab-member']['auth']['auth_url'])


class TestTempestConf(testtools.TestCase):

    def conf(self, storage, **kwargs):
        s = settings(storage, **kwargs)
        return cfg.parse_ini(tempest_conf.tempest_conf(
            s, IDS, '/ws/etc/compute-hosts.yaml', '/ws'))

    def test_local_is_block_migration(self):
        conf = self.conf('local')
        cfe = conf['compute-feature-enabled']
        self.assertEqual('true', cfe['live_migration'])
        self.assertEqual('true', cfe['block_migration_for_live_migration'])
        self.assertEqual('true', cfe['cold_migration'])
        self.assertEqual('true', cfe['resize'])
        self.assertIn('DifferentHostFilter', cfe['scheduler_enabled_filters'])
        self.assertEqual('2', conf['compute']['min_compute_nodes'])
        self.assertEqual('img-1', conf['compute']['image_ref'])
        self.assertEqual('fl-2', conf['compute']['flavor_ref_alt'])
        m = conf['migration']
        self.assertEqual('local', m['storage'])
        self.assertEqual('ssh', m['host_access'])
        self.assertEqual('root', m['ssh_user'])
        self.assertEqual('true', m['fail_hosts'])
        self.assertEqual('config-drive-block-migration,rolled-back-to-error,'
                         'force-complete-ignored-in-disk-copy',
                         m['known_bugs'])
        self.assertEqual('img-1', m['image_ref'])
        self.assertEqual('fl-1', m['flavor_ref'])
        self.assertEqual('/ws/etc/compute-hosts.yaml',
                         m['compute_hosts_file'])

    def test_shared_is_plain_live_migration(self):
        conf = self.conf('shared',
                         migration={'live_migration_tunnelled': True})
        self.assertEqual('false', conf['compute-feature-enabled'][
            'block_migration_for_live_migration'])
        self.assertEqual('nfs', conf['migration']['storage'])
        self.assertEqual('true', conf['migration']['live_migration_tunnelled'])

    def test_credentials(self):
        conf = self.conf('local')
        self.assertEqual('admin', conf['auth']['admin_username'])
        self.assertEqual('adminpw', conf['auth']['admin_password'])
        self.assertEqual('true', conf['auth']['use_dynamic_credentials'])
        self.assertEqual('false', conf['auth']['create_isolated_networks'])
        self.assertEqual('http://10.254.0.254:5000/v3',
                         conf['identity']['uri_v3'])
        self.assertEqual('true', conf['service_available']['cinder'])

    def test_every_migration_option_is_a_plugin_option(self):
        from migration_tempest_plugin import config as plugin_config
        names = {o.name for o in plugin_config.MigrationOpts}
        conf = self.conf('local')
        self.assertEqual(set(), set(conf['migration']) - names)
        storage = [o for o in plugin_config.MigrationOpts
                   if o.name == 'storage'][0]
        choices = [c[0] if isinstance(c, tuple) else c
                   for c in storage.type.choices]
        for value in cfg.PLUGIN_STORAGE.values():
            self.assertIn(value, choices)

    def test_compute_hosts(self):
        class Node:
            name = 'n1'
            libvirtd_log = '/state/nodes/n1/log-libvirt/libvirtd.log'
            uri = 'qemu+tcp://10.254.0.1/system'

            def argv(self, argv):
                return ['nsenter', '--net=/run/netns/lab-n1', '--'] + argv
        s = settings()
        hosts = yaml.safe_load(tempest_conf.compute_hosts(
            s, [(s.computes[0], Node())], '/state'))
        self.assertEqual(['lab-n1'], list(hosts))
        h = hosts['lab-n1']
        self.assertEqual('n1', h['node'])
        self.assertEqual('/srv/lab/local/nova', h['instances_path'])
        self.assertEqual('10.254.0.1', h['address'])
        self.assertEqual('/state/cloud/etc/nova-compute-lab-n1/nova.conf',
                         h['nova_conf'])
        self.assertEqual(Node.libvirtd_log, h['libvirtd_log'])
        self.assertEqual(['nsenter', '--net=/run/netns/lab-n1', '--'],
                         h['enter'])
        self.assertEqual(['restart-compute', 'lab-n1', '--state-dir',
                          '/state'], h['restart'][3:])
        # host_access = ssh: shell commands run inside the node.
        self.assertEqual('root', h['user'])
        self.assertEqual('/var/log/libvirt/libvirtd.log',
                         h['libvirtd_log_path'])
        for key, step in (('restart_command', 'restart-compute'),
                          ('compute_stop_command', 'stop-compute'),
                          ('compute_start_command', 'start-compute'),
                          ('libvirt_stop_command', 'kill-libvirtd'),
                          ('libvirt_start_command', 'start-libvirtd')):
            words = shlex.split(h[key])
            self.assertEqual([step, 'lab-n1', '--state-dir', '/state'],
                             words[3:7], key)
        self.assertIn('--no-wait', h['restart_command'])

    def test_sshd_listens_on_the_node_address_only(self):
        text = cloud_ssh.sshd_config('10.254.0.1', '/k', '/a')
        listen = [line for line in text.splitlines()
                  if line.startswith('ListenAddress')]
        self.assertEqual(['ListenAddress 10.254.0.1:22'], listen)
        self.assertIn('PasswordAuthentication no', text)

    def test_passwd_moves_only_roots_home(self):
        text = cloud_ssh.passwd_text(
            'root:x:0:0:root:/root:/bin/bash\n'
            'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n', '/s/home')
        self.assertEqual('root:x:0:0:root:/s/home:/bin/bash\n'
                         'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n',
                         text)


class TestVenv(testtools.TestCase):

    def test_constraints_pin_every_package(self):
        with open(venvlib.CONSTRAINTS) as f:
            pins = {}
            for line in f:
                line = line.strip()
                if line and not line.startswith('#'):
                    name, _, version = line.partition('==')
                    self.assertTrue(version, line)
                    pins[name.lower().replace('_', '-')] = version
        for pkg in venvlib.PACKAGES:
            self.assertIn(pkg.lower(), pins)
        self.assertEqual('34.0.0', pins['nova'])
        self.assertEqual('30.0.0', pins['keystone'])
        self.assertEqual('16.0.0', pins['openstack-placement'])
        self.assertEqual('33.0.0', pins['glance'])
        self.assertEqual('29.0.0', pins['neutron'])
        self.assertEqual('47.0.0', pins['tempest'])

    def test_fingerprint_follows_the_constraints(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, 'c.txt')
            with open(path, 'w') as f:
                f.write('a==1\n')
            one = venvlib.fingerprint(path)
            self.assertFalse(venvlib.is_ready(d, path))
            with open(os.path.join(d, venvlib.MARKER), 'w') as f:
                f.write(one + '\n')
            self.assertTrue(venvlib.is_ready(d, path))
            with open(path, 'w') as f:
                f.write('a==2\n')
            self.assertFalse(venvlib.is_ready(d, path))
