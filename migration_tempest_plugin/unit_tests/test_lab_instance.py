import shutil
import tempfile
from xml.etree import ElementTree

import testtools

from migration_tempest_plugin import flags
from migration_tempest_plugin.integrity import blocks
from migration_tempest_plugin.integrity import guest as guestlib
from migration_tempest_plugin.lab import disks
from migration_tempest_plugin.lab import instance as instancelib
from migration_tempest_plugin.lab import nodes


class TestInstance(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.state = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.state)
        self.lab = nodes.Lab(self.state)
        self.guest = guestlib.GuestImage(kernel='/k', initrd='/i', cmdline='c')
        self.layout = blocks.make_layout(8, 8)

    def instance(self, storage, **kw):
        return instancelib.Instance(self.lab, storage, self.guest,
                                    self.layout, console_dir=self.state,
                                    **kw)

    def disk(self, inst):
        return ElementTree.fromstring(inst.domain_xml()).find(
            'devices/disk')

    def test_file_disk_cache_none_by_default(self):
        disk = self.disk(self.instance('local'))
        self.assertEqual('file', disk.get('type'))
        self.assertEqual('none', disk.find('driver').get('cache'))
        self.assertTrue(disk.find('source').get('file').startswith(
            '/srv/lab/local/'))

    def test_nfs_is_a_network_disk(self):
        inst = self.instance('nfs', cache='writeback')
        disk = self.disk(inst)
        self.assertEqual('network', disk.get('type'))
        self.assertEqual('writeback', disk.find('driver').get('cache'))
        source = disk.find('source')
        self.assertEqual(('nfs', inst.disk),
                         (source.get('protocol'), source.get('name')))
        self.assertEqual('10.254.0.253', source.find('host').get('name'))
        self.assertIsNotNone(source.find('identity'))

    def test_zeroing_layout_passes_discards_on(self):
        self.assertIsNone(self.disk(self.instance('local')).find(
            'driver').get('discard'))
        self.layout = blocks.make_layout(8, 8, zero_every=4)
        driver = self.disk(self.instance('local')).find('driver')
        self.assertEqual(('unmap', 'unmap'), (driver.get('discard'),
                                              driver.get('detect_zeroes')))

    def test_base_on_other_storage(self):
        inst = self.instance('local', base_storage='shared')
        self.assertTrue(inst.disk.startswith('/srv/lab/local/'))
        self.assertTrue(inst.base.startswith('/srv/lab/shared/_base/'))
        # One shared base, written once; an overlay per node.
        self.assertEqual([self.lab.nodes[0]], inst.nodes_with_own_base())
        self.assertEqual(self.lab.nodes, inst.nodes_with_own_files())

    def test_ephemeral_disk_on_its_own_storage(self):
        inst = self.instance('shared', ephemeral_storage='local')
        found = ElementTree.fromstring(inst.domain_xml()).findall(
            'devices/disk')
        self.assertEqual(['vda', 'vdb'],
                         [d.find('target').get('dev') for d in found])
        self.assertEqual(inst.ephemeral,
                         found[1].find('source').get('file'))
        self.assertTrue(inst.ephemeral.startswith('/srv/lab/local/'))

    def test_migrate_disks(self):
        by_id = {c.id: c for c in disks.disk_cases()}
        self.assertEqual(('vdb',), by_id[
            'shared/nova-block+local-vdb-copied'].migrate_disks)
        self.assertEqual(('vda',), by_id[
            'shared/nova-live+writeback'].migrate_disks)


class TestDiskCases(testtools.TestCase):

    def test_names_and_expectations(self):
        cases = disks.disk_cases()
        ids = [c.id for c in cases]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertIn('shared/nova-live+writeback', ids)
        self.assertIn('local/nova-block+shared-base', ids)
        for case in cases:
            self.assertIs(case.disks.expectation, case.expectation())
            refused = case.name.endswith('left-out')
            self.assertEqual(flags.Outcome.REFUSED_BY_LIBVIRT if refused
                             else flags.Outcome.INTACT,
                             case.expectation().outcome)
            options = case.instance_options()
            self.assertEqual(case.disks.cache, options['cache'])
            self.assertTrue(options['base_storage'])
