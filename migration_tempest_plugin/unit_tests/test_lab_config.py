"""Unit tests of the lab's pure parts: config files, paths, parsers.

Nothing here needs root, libvirt or a network namespace.
"""

import os
import shutil
import subprocess
import tempfile
from unittest import mock
import uuid

import testtools

from migration_tempest_plugin.lab import libvirtd
from migration_tempest_plugin.lab import nodes
from migration_tempest_plugin.lab import storage
from migration_tempest_plugin.lab.storage import base as storagebase
from migration_tempest_plugin.lab.storage import nfs as nfsmode
from migration_tempest_plugin.lab.storage import shared as sharedmode
from migration_tempest_plugin.lab.storage import shared_nolock
from migration_tempest_plugin.lab import tls
from migration_tempest_plugin import runtime
from migration_tempest_plugin import storage_modes


def conf_dict(text):
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith('#'):
            key, _, value = line.partition('=')
            out[key.strip()] = value.strip()
    return out


class TestLibvirtConfigs(testtools.TestCase):

    def test_libvirtd_listens_on_node_address_only(self):
        conf = conf_dict(libvirtd.render_libvirtd_conf('10.254.0.1', 'u-1'))
        self.assertEqual('0', conf['listen_tls'])
        self.assertEqual('1', conf['listen_tcp'])
        self.assertEqual('"10.254.0.1"', conf['listen_addr'])
        self.assertEqual('"none"', conf['auth_tcp'])
        self.assertEqual('"u-1"', conf['host_uuid'])
        self.assertIn('/var/log/libvirt/libvirtd.log', conf['log_outputs'])

    def test_libvirtd_debug_filters_are_optional(self):
        debug = conf_dict(libvirtd.render_libvirtd_conf('10.254.0.1', 'u'))
        quiet = conf_dict(libvirtd.render_libvirtd_conf('10.254.0.1', 'u',
                                                        debug=False))
        self.assertIn('qemu.qemu_migration', debug['log_filters'])
        self.assertTrue(debug['log_outputs'].startswith('"1:'))
        self.assertNotIn('log_filters', quiet)
        self.assertTrue(quiet['log_outputs'].startswith('"3:'))

    def test_config_values_cannot_break_out_of_quotes(self):
        self.assertRaises(ValueError, libvirtd.render_libvirtd_conf,
                          '10.0.0.1"\nlisten_addr = "0.0.0.0', 'u')

    def test_host_uuids_differ_and_are_stable(self):
        a, b = libvirtd.host_uuid('n1'), libvirtd.host_uuid('n2')
        self.assertNotEqual(a, b)
        self.assertEqual(a, libvirtd.host_uuid('n1'))
        uuid.UUID(a)

    def test_qemu_conf(self):
        conf = conf_dict(libvirtd.render_qemu_conf('10.254.0.2'))
        self.assertEqual('"10.254.0.2"', conf['migration_host'])
        self.assertEqual('"10.254.0.2"', conf['migration_address'])
        self.assertEqual('"file"', conf['stdio_handler'])
        self.assertEqual('"none"', conf['security_driver'])
        self.assertEqual('[ ]', conf['cgroup_controllers'])
        self.assertEqual('"root"', conf['user'])
        self.assertEqual('"root"', conf['group'])
        self.assertEqual('"%s"' % libvirtd.TLS_DIR_IN_NODE,
                         conf['migrate_tls_x509_cert_dir'])
        self.assertEqual('1', conf['migrate_tls_x509_verify'])

    def test_tls_dir_is_inside_the_nodes_etc_libvirt(self):
        # Nothing may be needed at /etc/pki on the host.
        self.assertTrue(libvirtd.TLS_DIR_IN_NODE.startswith('/etc/libvirt/'))
        self.assertIn(('etc-libvirt', '/etc/libvirt'), libvirtd.NODE_BINDS)


MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:5 / /proc rw - proc proc rw
40 22 254:0 /var/tmp/lab/ns /var/tmp/lab/ns rw - ext4 /dev/vda rw
41 40 0:4 mnt:[4026532391] /var/tmp/lab/ns/n1.mnt rw - nsfs nsfs rw
42 22 0:60 / /var/tmp/lab/mnt/shared rw - fuse.glusterfs 10.254.0.253:/v rw
43 22 254:0 /x /var/tmp/lab2 rw - ext4 /dev/vda rw
44 22 0:61 / /srv/lab/with\\040space rw - fuse lab-nolock rw
45 22 0:62 / /var/tmp/lab/mnt/shared rw - tmpfs tmpfs rw
"""


class TestParsers(testtools.TestCase):

    def test_parse_mountinfo(self):
        mounts = runtime.parse_mountinfo(MOUNTINFO)
        self.assertEqual(8, len(mounts))
        self.assertEqual('nsfs', mounts[3]['fstype'])
        self.assertEqual('/srv/lab/with space', mounts[6]['target'])
        self.assertEqual(['shared:1'], mounts[0]['optional'])

    def test_top_mount_is_the_last_one(self):
        mounts = runtime.parse_mountinfo(MOUNTINFO)
        self.assertEqual('tmpfs', runtime.top_mount(
            mounts, '/var/tmp/lab/mnt/shared')['fstype'])
        self.assertIsNone(runtime.top_mount(mounts, '/nowhere'))

    def test_mounts_under_deepest_first_without_lookalikes(self):
        mounts = runtime.parse_mountinfo(MOUNTINFO)
        self.assertEqual(['/var/tmp/lab/mnt/shared', '/var/tmp/lab/ns/n1.mnt',
                          '/var/tmp/lab/ns'],
                         runtime.mounts_under(mounts, '/var/tmp/lab/'))

    def test_one_line(self):
        self.assertEqual('a | b', runtime.one_line('a\n\n  b  \n'))
        self.assertTrue(runtime.one_line('x' * 1000, 10).startswith('...'))

    def test_volume_status_xml(self):
        xml = """<cliOutput><volStatus><volumes><volume>
          <node><hostname>10.254.0.253</hostname>
            <path>/var/tmp/lab/gluster/brick</path><status>1</status>
            <port>49152</port><pid>77</pid></node>
          <node><hostname>Self-heal Daemon</hostname><path>localhost</path>
            <status>1</status><port>N/A</port><pid>78</pid></node>
        </volume></volumes></volStatus></cliOutput>"""
        self.assertEqual(
            {'10.254.0.253:/var/tmp/lab/gluster/brick': (True, 77, 49152)},
            sharedmode.parse_volume_status_xml(xml))
        self.assertEqual({}, sharedmode.parse_volume_status_xml(
            'Connection failed. Please check if gluster daemon is '
            'operational.'))


class TestStoragePaths(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.state = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.state)
        self.lab = nodes.Lab(self.state)

    def test_same_path_in_both_nodes(self):
        self.assertEqual(('local', 'shared', 'shared-nolock', 'nfs'),
                         storage_modes.NAMES[:4])
        for mode in storage_modes.NAMES:
            self.assertEqual('/srv/lab/' + mode, storage.storage_path(mode))
            self.assertEqual(storage.storage_path(mode),
                             self.lab.storage_path(mode))
        self.assertRaises(storage.StorageError, storage.storage_path,
                          'nfs4')

    def test_nodes(self):
        n1, n2 = self.lab.nodes
        self.assertEqual(('n1', '10.254.0.1', 'qemu+tcp://10.254.0.1/system'),
                         (n1.name, n1.address, n1.uri))
        self.assertEqual('lab-n2', n2.netns)
        self.assertIs(n2, self.lab.node('n2'))

    def test_local_is_per_node(self):
        n1, n2 = self.lab.nodes
        a = n1.host_path('local', 'instances/u/disk')
        b = n2.host_path('local', 'instances/u/disk')
        self.assertNotEqual(a, b)
        self.assertTrue(a.startswith(self.state + '/'))
        self.assertTrue(a.endswith('/n1/instances/u/disk'))

    def test_nolock_is_one_folder(self):
        n1, n2 = self.lab.nodes
        self.assertEqual(n1.host_path('shared-nolock', 'x/y'),
                         n2.host_path('shared-nolock', 'x/y'))

    def test_in_node_absolute_path_is_accepted(self):
        n1 = self.lab.nodes[0]
        self.assertEqual(n1.host_path('local', 'instances/_base/abc'),
                         n1.host_path('local',
                                      '/srv/lab/local/instances/_base/abc'))
        self.assertEqual(n1.host_path('local'), n1.host_path('local', ''))

    def test_escapes_are_refused(self):
        n1 = self.lab.nodes[0]
        self.assertRaises(runtime.LabError, n1.host_path, 'local', '../n2/x')
        self.assertRaises(runtime.LabError, n1.host_path, 'local',
                          '/srv/lab/shared/x')
        self.assertRaises(runtime.LabError, n1.host_path, 'local', '/etc/x')

    def test_shared_needs_the_host_client_mounted(self):
        self.assertRaises(runtime.LabError, self.lab.nodes[0].host_path,
                          'shared', 'x')
        with mock.patch.object(storagebase, 'host_mount_type',
                               return_value='fuse.glusterfs'):
            self.assertEqual(
                os.path.join(self.state, 'mnt', 'shared', 'x'),
                self.lab.nodes[0].host_path('shared', 'x'))

    def test_mode_outside_the_lab(self):
        lab = nodes.Lab(self.state, modes=('local',))
        self.assertRaises(runtime.LabError, lab.nodes[0].host_path,
                          'shared-nolock', 'x')
        self.assertEqual([lab.nodes[0], lab.nodes[1]], lab.sandboxes)
        self.assertIn(self.lab.gluster, self.lab.sandboxes)

    def test_unknown_mode_refused_at_construction(self):
        self.assertRaises(storage.StorageError, nodes.Lab, self.state,
                          modes=('nfs4',))

    def test_node_binds_cover_libvirt_state(self):
        targets = [dst for _src, dst in self.lab.nodes[0].binds()]
        for path in ('/run', '/etc/libvirt', '/var/lib/libvirt',
                     '/var/log/libvirt', '/var/cache/libvirt', '/srv',
                     '/srv/lab/local'):
            self.assertIn(path, targets)
        for src, _dst in self.lab.nodes[0].binds():
            self.assertTrue(src.startswith(self.state + '/'))
        # The mount points of every mode exist inside the node's /srv.
        for mode in storage_modes.NAMES:
            self.assertTrue(os.path.isdir(storagebase.node_mount_point(
                self.lab.nodes[0], mode)))

    def test_gluster_sandbox_binds(self):
        binds = dict((dst, src) for src, dst in self.lab.gluster.binds())
        self.assertEqual({'/run', '/var/lib/glusterd', '/etc/glusterfs',
                          '/var/log/glusterfs', '/srv', '/srv/lab/nfs'},
                         set(binds))
        # The export is the same folder the nodes see at the same path.
        self.assertEqual(nfsmode.export_dir(self.lab), binds['/srv/lab/nfs'])
        self.assertIn((nfsmode.export_dir(self.lab), '/srv/lab/nfs'),
                      self.lab.nodes[1].binds())
        with open(os.path.join(binds['/etc/glusterfs'],
                               'glusterd.vol')) as f:
            self.assertIn('listen-port 24007', f.read())

    def test_wrapped_argv(self):
        argv = self.lab.nodes[0].argv(['qemu-img', 'info', 'x'])
        self.assertEqual(['nsenter', '--net=/run/netns/lab-n1',
                          '--mount=%s/ns/n1.mnt' % self.state, '--',
                          'qemu-img', 'info', 'x'], argv)

    def test_env_keeps_libmount_state_in_the_state_folder(self):
        env = self.lab.env()
        self.assertTrue(env['LIBMOUNT_UTAB'].startswith(self.state + '/'))
        self.assertIn('/usr/sbin', env['PATH'].split(':'))


class TestStorageRendering(testtools.TestCase):

    def test_glusterd_vol(self):
        text = sharedmode.render_glusterd_vol()
        self.assertIn('option working-directory /var/lib/glusterd', text)
        self.assertIn('option base-port 49152', text)
        self.assertTrue(text.rstrip().endswith('end-volume'))

    def test_gluster_options_like_nfs(self):
        opts = dict(sharedmode.GLUSTER_VOLUME_OPTIONS)
        self.assertEqual('on', opts['performance.strict-o-direct'])
        self.assertEqual('off', opts['performance.io-cache'])
        self.assertEqual('off', opts['performance.read-ahead'])
        self.assertEqual('off', opts['performance.stat-prefetch'])

    def test_volume_options_parsed(self):
        text = ('Option                                  Value\n'
                '------                                  -----\n'
                'performance.stat-prefetch               on\n'
                'network.ping-timeout                    42\n'
                'cluster.min-free-disk                   10%\n')
        self.assertEqual({'performance.stat-prefetch': 'on',
                          'network.ping-timeout': '42',
                          'cluster.min-free-disk': '10%'},
                         sharedmode.parse_volume_options(text))

    def test_glusterfs_client_runs_in_foreground_without_caches(self):
        argv = sharedmode.glusterfs_client_argv('/srv/lab/shared', '/l/x.log')
        self.assertIn('--no-daemon', argv)
        self.assertIn('--attribute-timeout=0', argv)
        self.assertIn('--volfile-server=10.254.0.253', argv)
        self.assertEqual('/srv/lab/shared', argv[-1])

    def test_bindfs_keeps_locks_local(self):
        argv = shared_nolock.bindfs_argv('/state/nolock',
                                         '/srv/lab/shared-nolock')
        self.assertIn('-f', argv)
        self.assertNotIn('--enable-lock-forwarding', argv)
        self.assertEqual(['/state/nolock', '/srv/lab/shared-nolock'],
                         argv[-2:])

    def test_gluster_cli_logs_inside_the_sandbox(self):
        argv = sharedmode.gluster_cli('volume', 'list')
        self.assertIn('--mode=script', argv)
        self.assertIn('--log-file=/var/log/glusterfs/cli.log', argv)


class TestPreflight(testtools.TestCase):

    def test_missing_binaries_name_packages(self):
        lab = nodes.Lab(tempfile.gettempdir())
        with mock.patch.object(runtime, 'which',
                               side_effect=lambda b: None if b in (
                                   'bindfs', 'glusterd') else '/bin/' + b):
            self.assertEqual({'bindfs': 'bindfs',
                              'glusterd': 'glusterfs-server'},
                             lab.missing_binaries())
            with mock.patch('os.geteuid', return_value=0):
                exc = self.assertRaises(runtime.LabError, lab.preflight)
            self.assertIn('bindfs, glusterd', str(exc))
            local_only = nodes.Lab(tempfile.gettempdir(), modes=('local',))
            self.assertEqual({}, local_only.missing_binaries())

    def test_non_root_is_refused(self):
        lab = nodes.Lab(tempfile.gettempdir())
        with mock.patch('os.geteuid', return_value=1000):
            exc = self.assertRaises(runtime.LabError, lab.preflight)
            self.assertIn('root', str(exc))
            self.assertRaises(runtime.LabError, lab.down)


class TestTLS(testtools.TestCase):

    def test_certificate_extensions(self):
        from cryptography import x509
        from cryptography.x509.oid import ExtendedKeyUsageOID
        ca_key = tls._new_key()
        ca = tls.build_certificate('ca', 'lab CA', ca_key)
        self.assertTrue(ca.extensions.get_extension_for_class(
            x509.BasicConstraints).value.ca)
        self.assertTrue(ca.extensions.get_extension_for_class(
            x509.KeyUsage).value.key_cert_sign)
        server = tls.build_certificate('server', '10.254.0.1', tls._new_key(),
                                       ca_key, ca.subject, '10.254.0.1',
                                       'lab-n1')
        self.assertEqual(ca.subject, server.issuer)
        usage = server.extensions.get_extension_for_class(x509.KeyUsage).value
        self.assertTrue(usage.digital_signature and usage.key_encipherment)
        self.assertEqual([ExtendedKeyUsageOID.SERVER_AUTH], list(
            server.extensions.get_extension_for_class(
                x509.ExtendedKeyUsage).value))
        alt = server.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        self.assertEqual(['lab-n1'], alt.get_values_for_type(x509.DNSName))
        self.assertEqual('10.254.0.1', str(
            alt.get_values_for_type(x509.IPAddress)[0]))
        client = tls.build_certificate('client', 'n1 client', tls._new_key(),
                                       ca_key, ca.subject)
        self.assertEqual([ExtendedKeyUsageOID.CLIENT_AUTH], list(
            client.extensions.get_extension_for_class(
                x509.ExtendedKeyUsage).value))
        self.assertRaises(x509.ExtensionNotFound,
                          client.extensions.get_extension_for_class,
                          x509.SubjectAlternativeName)
        self.assertRaises(ValueError, tls.build_certificate, 'x', 'y', ca_key)

    def test_node_is_current_needs_all_files(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        self.assertFalse(tls.node_is_current(folder, '10.254.0.1', 'fp'))

    def test_certificates_verify_against_the_ca(self):
        if not shutil.which('openssl'):
            self.skipTest('openssl is not installed')
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        dest = os.path.join(folder, 'n1')
        tls.ensure_certificates(os.path.join(folder, 'ca'),
                                [('n1', '10.254.0.1', dest)])
        self.assertEqual(sorted(tls.NODE_FILES), sorted(
            n for n in os.listdir(dest) if not n.startswith('.')))
        for kind, purpose in (('server', 'sslserver'),
                              ('client', 'sslclient')):
            res = subprocess.run(
                ['openssl', 'verify', '-purpose', purpose, '-CAfile',
                 os.path.join(dest, 'ca-cert.pem'),
                 os.path.join(dest, '%s-cert.pem' % kind)],
                capture_output=True, text=True)
            self.assertEqual(0, res.returncode, res.stderr)
        text = subprocess.run(
            ['openssl', 'x509', '-noout', '-text', '-in',
             os.path.join(dest, 'server-cert.pem')],
            capture_output=True, text=True).stdout
        self.assertIn('IP Address:10.254.0.1', text)
        mtime = os.path.getmtime(os.path.join(dest, 'server-cert.pem'))
        tls.ensure_certificates(os.path.join(folder, 'ca'),
                                [('n1', '10.254.0.1', dest)])
        self.assertEqual(mtime, os.path.getmtime(
            os.path.join(dest, 'server-cert.pem')))
