"""Where a cinder volume is read back, from cinder's admin view of it
(hosts.volumes)."""

import testtools

from migration_tempest_plugin.hosts import access
from migration_tempest_plugin.hosts import volumes

VOLUME = '6f1d2c3b-0a9e-4d8c-b7f6-5e4d3c2b1a09'
NEW = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d'


def _volume(host, name_id=None):
    return {'id': VOLUME, 'os-vol-host-attr:host': host,
            'os-vol-mig-status-attr:name_id': name_id}


RBD_POOLS = [
    {'name': 'lab-n1@ceph#ceph', 'capabilities': {
        'storage_protocol': 'ceph', 'volume_backend_name': 'ceph',
        'location_info': 'ceph:/etc/ceph/ceph.conf:5f0c-fsid:cinder:volumes'}},
    {'name': 'lab-n1@ceph2#ceph2', 'capabilities': {
        'storage_protocol': 'ceph',
        'location_info':
            'ceph:/etc/ceph/ceph.conf:5f0c-fsid:cinder:volumes2'}},
]
LVM_POOLS = [
    {'name': 'controller@lvmdriver-1#lvmdriver-1', 'capabilities': {
        'storage_protocol': 'iSCSI',
        'location_info': 'LVMVolumeDriver:controller:'
                         'stack-volumes-lvmdriver-1:thin:0'}},
]


class TestLocate(testtools.TestCase):

    def test_rbd_volume_is_an_image_of_its_backends_pool(self):
        where = volumes.locate(_volume('lab-n1@ceph#ceph'), RBD_POOLS,
                               'admin', '/etc/ceph/ceph.conf')
        self.assertIsNone(where.host)
        self.assertEqual(access.RbdImage('volumes', 'volume-' + VOLUME,
                                         'admin', '/etc/ceph/ceph.conf'),
                         where.source)

    def test_migrated_volume_is_read_under_its_name_id(self):
        # An attached volume moved by cinder (nova's swap) keeps its id and
        # lives on under the new volume's on the other back end.
        where = volumes.locate(_volume('lab-n1@ceph2#ceph2', NEW),
                               RBD_POOLS)
        self.assertEqual('volumes2/volume-' + NEW, where.source.spec)

    def test_pool_found_by_backend_when_the_pool_name_differs(self):
        where = volumes.locate(_volume('lab-n1@ceph#other'), RBD_POOLS)
        self.assertEqual('volumes/volume-' + VOLUME, where.source.spec)

    def test_lvm_volume_is_read_on_its_volume_host(self):
        where = volumes.locate(_volume('controller@lvmdriver-1#lvmdriver-1'),
                               LVM_POOLS, hosts=('controller', 'compute1'))
        self.assertEqual('controller', where.host)
        self.assertEqual(access.BlockDevice(
            '/dev/stack-volumes-lvmdriver-1/volume-' + VOLUME), where.source)

    def test_lvm_volume_on_a_host_not_reached_is_not_readable(self):
        error = self.assertRaises(
            volumes.VolumeNotReadable, volumes.locate,
            _volume('controller@lvmdriver-1#lvmdriver-1'), LVM_POOLS,
            hosts=('compute1',))
        self.assertIn('controller', str(error))
        self.assertIn('compute_hosts_file', str(error))

    def test_other_backends_are_not_readable(self):
        pools = [{'name': 'c@nfs#nfs', 'capabilities': {
            'storage_protocol': 'nfs', 'location_info': ''}}]
        error = self.assertRaises(volumes.VolumeNotReadable, volumes.locate,
                                  _volume('c@nfs#nfs'), pools)
        self.assertIn('only RBD and LVM', str(error))

    def test_no_host_attribute_is_not_readable(self):
        self.assertRaisesRegex(volumes.VolumeNotReadable, 'admin view',
                               volumes.locate, {'id': VOLUME}, RBD_POOLS)

    def test_unknown_pool_is_not_readable(self):
        self.assertRaisesRegex(volumes.VolumeNotReadable, 'no cinder pool',
                               volumes.locate, _volume('x@y#z'), RBD_POOLS)
