"""The storage modes: the registry, the interface, and each mode's rules
of what a migration does to a disk on it."""

import os
import shutil
import sys
import tempfile
import types

import testtools

from migration_tempest_plugin.cloud import config as cloud_config
from migration_tempest_plugin import config
from migration_tempest_plugin import flags
from migration_tempest_plugin.lab import instance as instancelib
from migration_tempest_plugin.lab import nodes
from migration_tempest_plugin.lab import storage
from migration_tempest_plugin.lab.storage import base
from migration_tempest_plugin import storage_modes


class TestSafetyRules(testtools.TestCase):

    def expect(self, text, mode, **kw):
        return storage.expect(flags.parse(text), mode, **kw)

    def test_nova_sets_on_their_storage_are_intact(self):
        live = flags.nova_flags(flags.NovaOptions())
        block = flags.nova_flags(flags.NovaOptions(), block_migration=True)
        self.assertEqual(flags.Outcome.INTACT,
                         storage.expect(block, 'local').outcome)
        self.assertEqual(flags.Outcome.INTACT,
                         storage.expect(live, 'shared').outcome)
        self.assertEqual(flags.Outcome.INTACT,
                         storage.expect(live, 'nfs').outcome)

    def test_seed_case_is_data_at_risk(self):
        for copy in ('NON_SHARED_INC', 'NON_SHARED_DISK'):
            result = self.expect('LIVE|PEER2PEER|' + copy, 'shared-nolock')
            self.assertEqual(flags.Outcome.DATA_AT_RISK, result.outcome)
            self.assertIn('1499041', result.reason)

    def test_nfs_copy_onto_itself_is_data_at_risk(self):
        for copy in ('NON_SHARED_INC', 'NON_SHARED_DISK'):
            result = self.expect('LIVE|PEER2PEER|' + copy, 'nfs')
            self.assertEqual(flags.Outcome.DATA_AT_RISK, result.outcome)
        for text in ('LIVE|PEER2PEER', 'LIVE|PEER2PEER|UNSAFE'):
            self.assertEqual(flags.Outcome.INTACT,
                             self.expect(text, 'nfs').outcome)
        # Tunnelled with a disk copy: libvirt refuses before any copy.
        self.assertEqual(flags.Outcome.REFUSED_BY_LIBVIRT, self.expect(
            'LIVE|PEER2PEER|TUNNELLED|NON_SHARED_INC', 'nfs').outcome)

    def test_copy_onto_locked_shared_file_refused(self):
        result = self.expect('LIVE|PEER2PEER|NON_SHARED_INC', 'shared')
        self.assertEqual(flags.Outcome.REFUSED_BY_LIBVIRT, result.outcome)
        self.assertIn('block-export-add', result.message)

    def test_live_without_shared_storage_refused(self):
        for mode in ('local', 'shared-nolock'):
            result = self.expect('LIVE|PEER2PEER', mode)
            self.assertEqual(flags.Outcome.REFUSED_BY_LIBVIRT, result.outcome)
            self.assertEqual(flags.UNSAFE_MESSAGE, result.message)

    def test_unsafe_flag(self):
        self.assertEqual(flags.Outcome.INTACT, self.expect(
            'LIVE|PEER2PEER|UNSAFE', 'shared-nolock').outcome)
        local = self.expect('LIVE|PEER2PEER|UNSAFE', 'local')
        self.assertEqual(flags.Outcome.REFUSED_BY_LIBVIRT, local.outcome)
        self.assertEqual(flags.NO_DISK_MESSAGE, local.message)

    def test_nova_prechecks(self):
        result = self.expect('LIVE|PEER2PEER|NON_SHARED_INC', 'nfs',
                             via_nova=True)
        self.assertEqual(flags.Outcome.REFUSED_BY_NOVA, result.outcome)
        self.assertEqual('Block migration can not be used with shared '
                         'storage.', result.message)
        result = self.expect('LIVE|PEER2PEER', 'local', via_nova=True)
        self.assertEqual(flags.Outcome.REFUSED_BY_NOVA, result.outcome)
        self.assertIn('Shared storage live-migration requires',
                      result.message)

    def test_libvirt_flag_combinations(self):
        cases = {
            'LIVE|TUNNELLED': 'peer2peer',
            'LIVE|PEER2PEER|NON_SHARED_DISK|NON_SHARED_INC':
                'mutually exclusive',
            'LIVE|PEER2PEER|TUNNELLED|PARALLEL': 'mutually exclusive',
            'LIVE|PEER2PEER|TUNNELLED|POSTCOPY': 'tunnelled',
            'PEER2PEER|POSTCOPY': 'non-live or paused',
            'LIVE|PEER2PEER|PAUSED|POSTCOPY': 'non-live or paused',
            'LIVE|PEER2PEER|ZEROCOPY': 'parallel',
            'LIVE|PEER2PEER|TUNNELLED|NON_SHARED_INC': 'tunnelled',
        }
        for text, words in cases.items():
            result = self.expect(text, 'local')
            self.assertEqual(flags.Outcome.REFUSED_BY_LIBVIRT, result.outcome,
                             text)
            self.assertIn(words, result.message, text)

    def test_storage_aliases_and_errors(self):
        self.assertEqual('nfs', storage.mode('NFS').name)
        self.assertEqual('shared-nolock', storage.mode('nfs-nolock').name)
        self.assertRaises(storage.StorageError, storage.mode, 'ceph')

    def test_paused_guest_is_not_at_risk(self):
        block = flags.nova_flags(flags.NovaOptions(), block_migration=True)
        for mode in ('shared-nolock', 'nfs'):
            result = storage.expect(block, mode, paused=True)
            self.assertEqual(flags.Outcome.INTACT, result.outcome)
            self.assertIn('paused through the copy', result.reason)
            self.assertIn('1499041', result.reason)
        # A refusal does not depend on the guest's writes.
        self.assertEqual(flags.Outcome.REFUSED_BY_LIBVIRT, storage.expect(
            block, 'shared', paused=True).outcome)


class TestRegistry(testtools.TestCase):

    def test_every_mode_is_found_and_named_as_registered(self):
        self.assertEqual(('local', 'shared', 'shared-nolock', 'nfs'),
                         storage_modes.NAMES[:4])
        for name in storage_modes.NAMES:
            m = storage.mode(name)
            self.assertIsInstance(m, base.StorageMode)
            self.assertEqual(name, m.name)
            self.assertEqual('/srv/lab/' + name, m.path)

    def test_cloud_and_plugin_read_the_registry(self):
        self.assertEqual({'local': 'local', 'shared': 'nfs', 'rbd': 'rbd'},
                         cloud_config.PLUGIN_STORAGE)
        self.assertEqual(('local', 'shared', 'rbd'),
                         cloud_config.STORAGE_MODES)
        opt = {o.name: o for o in config.MigrationOpts}['storage']
        self.assertEqual(['local', 'nfs', 'rbd'],
                         [c for c, _help in opt.type.choices.items()])


class TrivialMode(base.StorageMode):
    """A mode for the test: one host folder bound into both nodes."""
    name = 'trivial'
    packages = {'true': 'coreutils'}

    def folder(self, lab):
        return base.state_dir(lab, 'trivial')

    def host_base(self, lab, node):
        return self.folder(lab)

    def node_binds(self, lab, node):
        return [(self.folder(lab), self.path)]

    def expect(self, value):
        return base.expectation(flags.Outcome.INTACT, 'nothing can go wrong')


class TestAddingAMode(testtools.TestCase):
    """A new mode is one module and one registry line: the lab, its
    instances and its rules find it with nothing else changed."""

    def setUp(self):
        super().setUp()
        module = types.ModuleType(storage.__name__ + '.trivial')
        module.MODE = TrivialMode
        sys.modules[module.__name__] = module
        self.addCleanup(sys.modules.pop, module.__name__)
        self.patch(storage_modes, 'REGISTRY', storage_modes.REGISTRY + (
            storage_modes.Entry('trivial'),))
        self.patch(storage_modes, 'NAMES', storage_modes.NAMES + (
            'trivial',))
        self.addCleanup(storage._MODES.pop, 'trivial', None)
        self.state = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.state)

    def test_the_lab_uses_it(self):
        lab = nodes.Lab(self.state, modes=('local', 'trivial'))
        n1, n2 = lab.nodes
        self.assertIn((os.path.join(self.state, 'storage', 'trivial'),
                       '/srv/lab/trivial'), n1.binds())
        self.assertEqual(n1.host_path('trivial', 'x'),
                         n2.host_path('trivial', 'x'))
        self.assertIn('true', storage.packages(lab.modes))
        self.assertNotIn(lab.gluster, lab.sandboxes)
        guest = types.SimpleNamespace(kernel='/k', initrd='/i', cmdline='')
        layout = types.SimpleNamespace(image_id='img', zero_every=0,
                                       size_bytes=1 << 20)
        inst = instancelib.Instance(lab, 'trivial', guest, layout,
                                    console_dir=self.state)
        self.assertIn('<source file="/srv/lab/trivial/%s/disk"/>'
                      % inst.uuid, inst.domain_xml())
        self.assertEqual([n1], inst.nodes_with_own_files())
        self.assertEqual(flags.Outcome.INTACT, storage.expect(
            flags.nova_flags(flags.NovaOptions()), 'trivial').outcome)
        # libvirt's own refusals come before any mode's rule.
        self.assertEqual(flags.Outcome.REFUSED_BY_LIBVIRT, storage.expect(
            'LIVE|TUNNELLED', 'trivial').outcome)
