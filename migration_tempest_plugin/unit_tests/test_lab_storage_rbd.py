"""The rbd storage mode: its Ceph configuration, names, libvirt XML and
rules (the cluster itself runs only in the lab)."""

import configparser
import os
import shutil
import tempfile
import types
from xml.etree import ElementTree

import testtools

from migration_tempest_plugin import flags
from migration_tempest_plugin.lab import instance as instancelib
from migration_tempest_plugin.lab import nodes
from migration_tempest_plugin.lab import storage
from migration_tempest_plugin.lab.storage import rbd

FSID = '0b4c6c2e-1d7f-4a55-b3c9-2f0f3f6a1e11'


def parse_conf(text):
    # ceph.conf is INI-like; '$' and the '#' comment are fine for it.
    conf = configparser.ConfigParser(interpolation=None)
    conf.read_string(text)
    return conf


class TestCephConf(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.conf = parse_conf(rbd.render_ceph_conf(FSID, '/st/ceph'))

    def test_global_names_the_cluster_and_cephx(self):
        g = self.conf['global']
        self.assertEqual(FSID, g['fsid'])
        self.assertEqual('[v2:10.254.0.253:3300,v1:10.254.0.253:6789]',
                         g['mon_host'])
        for who in ('cluster', 'service', 'client'):
            self.assertEqual('cephx', g['auth_%s_required' % who])
        self.assertEqual('false', g['auth_allow_insecure_global_id_reclaim'])
        self.assertEqual('1', g['osd_pool_default_size'])
        self.assertEqual('off', g['osd_pool_default_pg_autoscale_mode'])
        self.assertEqual('/st/ceph/run', g['run_dir'])

    def test_daemon_files_stay_in_the_daemon_sections(self):
        # In [global], every client (QEMU too) would write to the daemons'
        # log and socket, and a keyring there overrides the daemons' own.
        for key in ('log_file', 'admin_socket', 'keyring', 'public_addr'):
            self.assertNotIn(key, self.conf['global'])
        for kind in ('mon', 'mgr', 'osd'):
            section = self.conf[kind]
            self.assertEqual('/st/ceph/log/$name.log', section['log_file'])
            self.assertEqual('/st/ceph/run/$name.asok',
                             section['admin_socket'])
            self.assertEqual('/st/ceph/%s/ceph-$id' % kind,
                             section['%s_data' % kind])
            self.assertEqual('/st/ceph/%s/ceph-$id/keyring' % kind,
                             section['keyring'])
            self.assertEqual('10.254.0.253', section['public_addr'])
        self.assertEqual('bluestore', self.conf['osd']['osd_objectstore'])
        self.assertEqual(str(rbd.OSD_BLOCK_GIB << 30),
                         self.conf['osd']['bluestore_block_size'])
        self.assertEqual('939524096', self.conf['osd']['osd_memory_target'])
        self.assertEqual('/st/ceph/etc/ceph.$name.keyring',
                         self.conf['client']['keyring'])

    def test_a_node_gets_a_client_conf(self):
        conf = parse_conf(rbd.render_ceph_conf(FSID, '/st/ceph',
                                               for_node=True))
        self.assertEqual(['global', 'client'], conf.sections())
        self.assertEqual(FSID, conf['global']['fsid'])
        self.assertEqual('/etc/ceph/ceph.$name.keyring',
                         conf['client']['keyring'])
        self.assertNotIn('/st/ceph', rbd.render_ceph_conf(
            FSID, '/st/ceph', for_node=True).split('[global]')[1])

    def test_keyring(self):
        text = rbd.render_keyring('client.cinder', 'QUJD', rbd.CLIENT_CAPS[
            rbd.CINDER])
        self.assertIn('[client.cinder]\n\tkey = QUJD\n', text)
        self.assertIn('\tcaps mon = "profile rbd"\n', text)
        self.assertIn('\tcaps osd = "profile rbd pool=volumes, profile rbd '
                      'pool=volumes2, profile rbd pool=vms, profile '
                      'rbd-read-only pool=images"\n', text)
        self.assertEqual('QUJD', rbd.parse_key(text))
        self.assertRaises(storage.StorageError, rbd.parse_key, '[x]\n')


class TestNames(testtools.TestCase):

    def test_nova_names_its_disks_so(self):
        self.assertEqual(('vms', 'u1_disk'), rbd.image_spec('u1/disk'))
        self.assertEqual(('vms', 'u1_disk.local'),
                         rbd.image_spec('/srv/lab/rbd/u1/disk.local'))
        self.assertEqual(('vms', '_base_ab12'), rbd.image_spec('_base/ab12'))
        self.assertEqual(('vms', 'u1'), rbd.image_spec('u1'))

    def test_bad_names_are_refused(self):
        for bad in ('', '/srv/lab/rbd', '../x', '/srv/lab/nfs/u1/disk'):
            self.assertRaises(storage.StorageError, rbd.image_spec, bad)
        self.assertRaises(storage.StorageError, rbd.qemu_url, 'vms',
                          'a:conf=/x')
        self.assertRaises(storage.StorageError, rbd.qemu_url, 'vms', 'a@s')

    def test_qemu_names(self):
        m = storage.mode('rbd')
        url = 'rbd:vms/u1_disk:id=cinder:conf=/etc/ceph/ceph.conf'
        self.assertEqual(url, m.qemu_name('u1/disk'))
        self.assertEqual(url, m.read_name('u1/disk'))
        self.assertEqual('/etc/ceph/ceph.client.cinder.keyring',
                         rbd.node_keyring(rbd.CINDER))

    def test_disks_clone_a_base_on_rbd_only(self):
        m = storage.mode('rbd')
        local = storage.mode('local')
        lab = types.SimpleNamespace()
        self.assertRaises(storage.StorageError, m.create_disk, lab, None,
                          'u/disk', 1 << 20, base=(local, '_base/x'))
        self.assertRaises(storage.StorageError, m.create_disk, lab, None,
                          'u/disk.local', (1 << 20) + 1)
        self.assertEqual('qcow2', local.disk_format)

    def test_secret_xml(self):
        xml = ElementTree.fromstring(rbd.render_secret_xml())
        self.assertEqual(rbd.SECRET_UUID, xml.findtext('uuid'))
        self.assertEqual('ceph', xml.find('usage').get('type'))
        self.assertEqual('client.cinder secret', xml.findtext('usage/name'))
        self.assertEqual('no', xml.get('private'))


class TestInTheLab(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.state = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.state)
        # The lab cloud's shape: its instance storage plus Ceph.
        self.lab = nodes.Lab(self.state, modes=('local', 'rbd'))

    def test_a_lab_with_rbd_and_another_mode(self):
        n1, n2 = self.lab.nodes
        client = os.path.join(self.state, 'storage', 'ceph', 'etc')
        self.assertEqual(client, rbd.client_dir(self.lab))
        for node in (n1, n2):
            binds = node.binds()
            self.assertIn((client, '/etc/ceph'), binds)
            self.assertIn((os.path.join(self.state, 'storage', 'rbd',
                                        node.name), '/srv/lab/rbd'), binds)
            self.assertIn((os.path.join(self.state, 'storage', 'local',
                                        node.name), '/srv/lab/local'), binds)
        self.assertNotEqual(n1.host_path('rbd', 'u'),
                            n2.host_path('rbd', 'u'))
        self.assertIn(self.lab.gluster, self.lab.sandboxes)
        self.assertEqual('ceph-common',
                         storage.packages(self.lab.modes)['rbd'])
        self.assertIn('/etc/ceph',
                      storage.host_dirs_needed(self.lab.modes))
        self.assertEqual(os.path.join(self.state, 'storage', 'ceph',
                                      'ceph.conf'), rbd.host_conf(self.lab))
        self.assertEqual(os.path.join(client, 'ceph.client.admin.keyring'),
                         rbd.host_keyring(self.lab, rbd.ADMIN))

    def test_the_disk_is_a_network_disk_with_the_secret(self):
        guest = types.SimpleNamespace(kernel='/k', initrd='/i', cmdline='')
        layout = types.SimpleNamespace(image_id='img', zero_every=0,
                                       size_bytes=1 << 20)
        inst = instancelib.Instance(self.lab, 'rbd', guest, layout,
                                    console_dir=self.state,
                                    ephemeral_storage='rbd')
        vda, vdb = ElementTree.fromstring(inst.domain_xml()).findall(
            'devices/disk')
        self.assertEqual('network', vda.get('type'))
        # Raw, as nova's RBD disks: a qcow2 image on RBD would grow.
        self.assertEqual('raw', vda.find('driver').get('type'))
        source = vda.find('source')
        self.assertEqual(('rbd', 'vms/%s_disk' % inst.uuid),
                         (source.get('protocol'), source.get('name')))
        host = source.find('host')
        self.assertEqual(('10.254.0.253', '6789'),
                         (host.get('name'), host.get('port')))
        auth = source.find('auth')
        self.assertEqual('cinder', auth.get('username'))
        self.assertEqual(('ceph', rbd.SECRET_UUID),
                         (auth.find('secret').get('type'),
                          auth.find('secret').get('uuid')))
        self.assertEqual('vms/%s_disk.local' % inst.uuid,
                         vdb.find('source').get('name'))
        self.assertEqual([self.lab.nodes[0]], inst.nodes_with_own_files())


class TestRules(testtools.TestCase):

    def expect(self, text, **kw):
        return storage.expect(flags.parse(text), 'rbd', **kw)

    def test_no_copy_is_intact(self):
        for text in ('LIVE|PEER2PEER', 'LIVE|PEER2PEER|UNSAFE',
                     'LIVE|PEER2PEER|TUNNELLED', 'LIVE|PEER2PEER|POSTCOPY'):
            result = self.expect(text)
            self.assertEqual(flags.Outcome.INTACT, result.outcome, text)
            self.assertIn('network disk', result.reason)

    def test_copies(self):
        inc = self.expect('LIVE|PEER2PEER|NON_SHARED_INC')
        self.assertEqual(flags.Outcome.REFUSED_BY_LIBVIRT, inc.outcome)
        self.assertEqual(rbd.PRECREATE_INC_MESSAGE, inc.message)
        # UNSAFE skips the safety check, not the destination's pre-check.
        self.assertEqual(inc, self.expect(
            'LIVE|PEER2PEER|NON_SHARED_INC|UNSAFE'))
        full = self.expect('LIVE|PEER2PEER|NON_SHARED_DISK')
        self.assertEqual(flags.Outcome.DATA_AT_RISK, full.outcome)
        self.assertEqual(flags.Outcome.INTACT, self.expect(
            'LIVE|PEER2PEER|NON_SHARED_DISK', paused=True).outcome)

    def test_nova_sees_shared_block_storage(self):
        result = self.expect('LIVE|PEER2PEER|NON_SHARED_INC', via_nova=True)
        self.assertEqual(flags.Outcome.REFUSED_BY_NOVA, result.outcome)
        self.assertEqual(flags.Outcome.INTACT, self.expect(
            'LIVE|PEER2PEER', via_nova=True).outcome)
