"""Host access from the compute-hosts file (no lab, no SSH: the `enter`
prefix of a lab entry is any argv, here `env`)."""

import gzip
import mmap
import os
import shutil
import signal
import subprocess
import sys

import fixtures
import testtools
import yaml

from migration_tempest_plugin.hosts import access
from migration_tempest_plugin.integrity import blocks
from migration_tempest_plugin.integrity import checker
from migration_tempest_plugin.integrity import history


def _conf(host_access, hosts_file):
    opts = type('Opts', (), dict(
        host_access=host_access, compute_hosts_file=hosts_file,
        libvirtd_log_path='/var/log/libvirt/libvirtd.log',
        ssh_user='stack', ssh_key_file=None))
    return type('Conf', (), {'migration': opts})


class TestLoadHosts(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path

    def write(self, entries):
        path = os.path.join(self.dir, 'compute-hosts.yaml')
        with open(path, 'w') as f:
            yaml.safe_dump(entries, f)
        return path

    def test_none_needs_no_file(self):
        self.assertEqual({}, access.load_hosts(_conf('none', None)))

    def test_lab_entry_runs_through_its_enter_prefix(self):
        log = os.path.join(self.dir, 'libvirtd.log')
        with open(log, 'w') as f:
            f.write('migrate flags=0x1\n')
        path = self.write({'lab-n1': {
            'enter': ['env', 'MTP_NODE=n1'],
            'libvirtd_log': log,
            'instances_path': '/srv/lab/local/nova',
            'restart': ['false']}})
        host = access.load_hosts(_conf('lab', path))['lab-n1']
        self.assertEqual('n1\n', host.execute(
            ['sh', '-c', 'echo $MTP_NODE']))
        self.assertEqual('migrate flags=0x1\n', host.libvirtd_log())
        self.assertEqual('/srv/lab/local/nova/u1/disk',
                         host.instance_disk('u1'))
        self.assertRaisesRegex(access.HostAccessError,
                               'restarting nova-compute on lab-n1',
                               host.restart_nova_compute)

    def test_lab_entry_without_enter_is_a_clear_error(self):
        path = self.write({'lab-n1': {'libvirtd_log': '/x'}})
        self.assertRaisesRegex(access.HostAccessError,
                               "compute host lab-n1 in .* has no 'enter'",
                               access.load_hosts, _conf('lab', path))

    def test_failed_command_names_host_and_command(self):
        host = access.LabComputeHost('lab-n2', [], '/x',
                                     instances_path='/i',
                                     libvirtd_log_path='/x')
        self.assertRaisesRegex(access.HostAccessError,
                               'sh on lab-n2: boom',
                               host.execute,
                               ['sh', '-c', 'echo boom >&2; exit 3'])

    def test_ssh_entry_defaults(self):
        path = self.write({'compute1': {'restart_command': 'true'}})
        host = access.load_hosts(_conf('ssh', path))['compute1']
        self.assertIsInstance(host, access.SSHComputeHost)
        self.assertEqual('compute1', host.address)
        self.assertEqual('stack', host.user)
        self.assertEqual('/opt/stack/data/nova/instances',
                         host.instances_path)


UUID = '0b5e2b8e-8f4b-4d6e-9c1e-2a7a3e1f9c11'


def _local_host(tmp, **kwargs):
    """A lab host whose `enter` prefix is empty: its commands run here, as
    the lab runs them inside a node."""
    kwargs.setdefault('instances_path', os.path.join(tmp, 'instances'))
    kwargs.setdefault('libvirtd_log_path', os.path.join(tmp, 'libvirtd.log'))
    return access.LabComputeHost('n1', [], os.path.join(tmp, 'local.log'),
                                 **kwargs)


class TestSSHCommandLine(testtools.TestCase):

    def _host(self, user):
        return access.SSHComputeHost('c1', '192.0.2.1', user, None,
                                     instances_path='/i',
                                     libvirtd_log_path='/l')

    def test_root_runs_without_sudo(self):
        self.assertEqual("tail -c +11 '/var/log/a b.log'",
                         self._host('root').command_line(
                             ['tail', '-c', '+11', '/var/log/a b.log']))

    def test_other_users_go_through_sudo_without_prompt(self):
        self.assertEqual("sudo -n sh -c 'echo $HOME'",
                         self._host('stack').command_line(
                             ['sh', '-c', 'echo $HOME']))


class TestHostFiles(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.host = _local_host(self.dir)
        self.path = os.path.join(self.dir, 'console.log')

    def test_file_size_and_read_from(self):
        self.assertIsNone(self.host.file_size(self.path))
        self.assertFalse(self.host.has_file(self.path))
        with open(self.path, 'wb') as f:
            f.write(b'0123456789\x00\xffend\n')
        self.assertTrue(self.host.has_file(self.path))
        self.assertEqual(16, self.host.file_size(self.path))
        self.assertEqual(b'\x00\xffend\n', self.host.read_from(self.path, 10))
        self.assertEqual(b'', self.host.read_from(self.path, 16))
        self.assertEqual(b'0123456789\x00\xffend\n',
                         self.host.read_from(self.path, 0))

    def test_read_from_a_missing_file_fails(self):
        self.assertRaisesRegex(access.HostAccessError, 'tail on n1',
                               self.host.read_from, self.path, 0)

    def test_console_log_path(self):
        self.assertEqual(os.path.join(self.dir, 'instances', UUID,
                                      'console.log'),
                         self.host.console_log(UUID))

    def test_original_is_kept_once_and_restored(self):
        conf = os.path.join(self.dir, 'nova.conf')
        orig = conf + '.orig'
        with open(conf, 'w') as f:
            f.write('deployed\n')
        self.host.keep_original(conf, orig)
        self.host.write_text(conf, 'test options\n')
        # A second keep (a fixture that did not clean up) must not take
        # the test's file for the original.
        self.host.keep_original(conf, orig)
        with open(orig) as f:
            self.assertEqual('deployed\n', f.read())
        self.assertTrue(self.host.restore_original(conf, orig))
        with open(conf) as f:
            self.assertEqual('deployed\n', f.read())
        self.assertFalse(os.path.exists(orig))
        self.assertFalse(self.host.restore_original(conf, orig))


class TestLibvirtdLogSince(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.host = _local_host(self.dir)

    def _check(self, path, size, since):
        with open(path, 'w') as f:
            f.write('before the migration\n')
        mark = size()
        self.assertEqual(21, mark)
        with open(path, 'a') as f:
            f.write('migrate call\n')
        self.assertEqual('migrate call\n', since(mark))
        # Rotated: shorter than the mark, read from its start.
        with open(path, 'w') as f:
            f.write('new\n')
        self.assertEqual('new\n', since(mark))

    def test_lab_log_is_read_here_from_the_offset(self):
        self.assertEqual(0, self.host.libvirtd_log_size())
        self.assertEqual('', self.host.libvirtd_log_since(0))
        self._check(self.host.libvirtd_log_file, self.host.libvirtd_log_size,
                    self.host.libvirtd_log_since)

    def test_host_log_is_read_on_the_host_from_the_offset(self):
        # ComputeHost's own way (SSH's): file_size, then tail -c +N.
        host = self.host
        self.assertEqual(0, access.ComputeHost.libvirtd_log_size(host))
        self._check(host.libvirtd_log_path,
                    lambda: access.ComputeHost.libvirtd_log_size(host),
                    lambda mark: access.ComputeHost.libvirtd_log_since(
                        host, mark))


class TestServiceCommands(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path

    def test_commands_from_the_hosts_file(self):
        log = os.path.join(self.dir, 'done')
        path = os.path.join(self.dir, 'hosts.yaml')
        with open(path, 'w') as f:
            yaml.safe_dump({'n1': {
                'enter': [], 'libvirtd_log': '/x',
                'compute_stop_command': 'echo compute-stop >> %s' % log,
                'libvirt_start_command': 'echo libvirt-start >> %s' % log,
            }}, f)
        host = access.load_hosts(_conf('lab', path))['n1']
        host.stop_nova_compute()
        host.start_libvirt()
        with open(log) as f:
            self.assertEqual('compute-stop\nlibvirt-start\n', f.read())
        self.assertRaisesRegex(access.HostAccessError,
                               'no compute_start_command for compute host '
                               'n1', host.start_nova_compute)
        self.assertRaisesRegex(access.HostAccessError,
                               'no libvirt_stop_command', host.stop_libvirt)

    def test_ssh_entry_takes_the_commands(self):
        path = os.path.join(self.dir, 'hosts.yaml')
        with open(path, 'w') as f:
            yaml.safe_dump({'c1': {'compute_stop_command': 'systemctl stop '
                                   'devstack@n-cpu', 'user': 'root'}}, f)
        host = access.load_hosts(_conf('ssh', path))['c1']
        self.assertEqual({'compute_stop_command':
                          'systemctl stop devstack@n-cpu'}, host.commands)
        self.assertEqual('root', host.user)


class TestKillGuest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.host = _local_host(self.dir, qemu_pid_dir=self.dir)

    def _process(self, *argv):
        proc = subprocess.Popen(
            [sys.executable, '-c', 'import time; time.sleep(60)'] +
            list(argv))
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        return proc

    def _pid_file(self, name, pid):
        with open(os.path.join(self.dir, name + '.pid'), 'w') as f:
            f.write('%d' % pid)

    def test_kills_the_process_of_the_pid_file_that_names_the_uuid(self):
        guest = self._process('-uuid', UUID)
        bystander = self._process('-uuid', 'f' * 8 + UUID[8:])
        self._pid_file('instance-00000001', guest.pid)
        self.host.kill_guest(UUID, domain_name='instance-00000001')
        self.assertEqual(-signal.SIGKILL, guest.wait(timeout=10))
        self.assertIsNone(bystander.poll())

    def test_refuses_a_pid_that_is_not_the_guest(self):
        other = self._process('-uuid', 'f' * 8 + UUID[8:])
        self._pid_file('instance-00000001', other.pid)
        self.assertRaisesRegex(access.HostAccessError, 'is not the QEMU of',
                               self.host.kill_guest, UUID,
                               domain_name='instance-00000001')
        self.assertIsNone(other.poll())

    def test_refuses_a_missing_pid_file(self):
        self.assertRaises(access.HostAccessError, self.host.kill_guest,
                          UUID, domain_name='instance-00000009')

    def test_script_finds_the_domain_name_with_virsh(self):
        script = access.kill_script(UUID)
        self.assertIn('$(virsh -c qemu:///system domname %s)' % UUID, script)
        self.assertIn('/run/libvirt/qemu/$name.pid', script)


class TestGunzipWriter(testtools.TestCase):

    class Sink(object):
        def __init__(self):
            self.writes = []

        def write(self, data):
            self.writes.append(bytes(data))

    def test_inflates_in_bounded_pieces(self):
        data = (b'MTP block record' * 256) * 4096    # 16 MiB, compresses
        packed = gzip.compress(data)
        self.assertLess(len(packed), len(data) // 100)
        sink = self.Sink()
        writer = access.GunzipWriter(sink, piece=1 << 16)
        for at in range(0, len(packed), 4096):
            writer.write(packed[at:at + 4096])
        writer.close()
        self.assertEqual(data, b''.join(sink.writes))
        self.assertLessEqual(max(len(w) for w in sink.writes), 1 << 16)

    def test_a_cut_stream_is_an_error(self):
        packed = gzip.compress(b'x' * 100000)
        writer = access.GunzipWriter(self.Sink())
        writer.write(packed[:-4])
        self.assertRaisesRegex(access.HostAccessError, 'cut short',
                               writer.close)

    def test_trailing_data_is_an_error(self):
        writer = access.GunzipWriter(self.Sink())
        self.assertRaisesRegex(access.HostAccessError, 'after the end',
                               writer.write, gzip.compress(b'x') + b'junk')

    def test_corrupt_data_is_an_error(self):
        writer = access.GunzipWriter(self.Sink())
        self.assertRaisesRegex(access.HostAccessError, 'corrupt',
                               writer.write, b'not gzip at all')


@testtools.skipUnless(shutil.which('qemu-img'), 'needs qemu-img')
class TestDiskImage(testtools.TestCase):
    """The read-back on a real qcow2 image, judged by the real checker."""

    LAYOUT = blocks.make_layout(63, 64, 'a1b2c3d4')   # 128 blocks
    RUN = '7e57c0de'
    WRITES = 100

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.host = _local_host(self.dir)

    def _instance_disk(self, lose=None):
        """A qcow2 disk after WRITES writes, write `lose` never done."""
        data = bytearray().join(blocks.iter_base_image(self.LAYOUT))
        for seq in range(self.WRITES):
            if seq == lose:
                continue
            idx = self.LAYOUT.seq_block(seq)
            data[idx * blocks.BLOCK_SIZE:(idx + 1) * blocks.BLOCK_SIZE] = \
                blocks.make_block(self.RUN, idx, self.LAYOUT.seq_gen(seq))
        raw = os.path.join(self.dir, 'disk.raw')
        with open(raw, 'wb') as f:
            f.write(data)
        disk = self.host.instance_disk(UUID)
        os.makedirs(os.path.dirname(disk))
        subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2',
                        raw, disk], check=True)
        return bytes(data)

    def _history(self):
        return history.parse(history.render(self.LAYOUT, self.RUN,
                                            self.WRITES))

    def _check(self, gzipped):
        expected = self._instance_disk()
        self.host.gzip_disk_stream = gzipped
        with self.host.disk_image(UUID) as image:
            self.assertIsInstance(image, mmap.mmap)
            self.assertEqual(expected, image[:])
            report = checker.check(self._history(), image)
        self.assertTrue(image.closed)
        self.assertEqual(checker.INTACT, report.verdict, report.message)
        self.assertEqual(len(expected), report.image_bytes)

    def test_streamed_as_is_into_a_mapped_temporary_file(self):
        self._check(gzipped=False)

    def test_streamed_gzipped_as_over_ssh(self):
        self._check(gzipped=True)

    def test_a_lost_write_shows_through_the_mapping(self):
        self._instance_disk(lose=self.WRITES - 1)
        with self.host.disk_image(UUID) as image:
            report = checker.check(self._history(), image)
        self.assertEqual(checker.DATA_LOSS, report.verdict, report.message)

    def test_only_the_layouts_part_is_read(self):
        # A root disk that nova grew past the layout: the tail stays home.
        expected = self._instance_disk()
        subprocess.run(['qemu-img', 'resize', '-q',
                        self.host.instance_disk(UUID), '16M'], check=True)
        hist = self._history()
        with self.host.disk_image(UUID,
                                  length=hist.layout.size_bytes) as image:
            self.assertEqual(expected, image[:])
            report = checker.check(hist, image)
        self.assertEqual(checker.INTACT, report.verdict, report.message)

    def test_no_disk_is_an_error(self):
        def read():
            with self.host.disk_image(UUID):
                pass
        self.assertRaises(access.HostAccessError, read)


FAKE_RBD = r'''#!/bin/sh
# rbd --id USER --conf CONF info|export [--no-progress] POOL/IMAGE [-]
echo "$*" >> "$FAKE_RBD_DIR/calls"
cmd=; spec=
while [ $# -gt 0 ]; do
    case "$1" in
    --id|--conf) shift 2 ;;
    --no-progress|-) shift ;;
    info|export) cmd=$1; shift ;;
    *) spec=$1; shift ;;
    esac
done
file="$FAKE_RBD_DIR/$(echo "$spec" | tr / _)"
if [ ! -f "$file" ]; then
    echo "rbd: error opening image ${spec#*/}: (2) No such file" \
        "or directory" >&2
    exit 2
fi
[ "$cmd" = info ] && exit 0
if [ -f "$FAKE_RBD_DIR/epipe" ]; then
    # As the real rbd: SIGPIPE ignored, EPIPE reported, exit 32.
    trap '' PIPE
    cat "$file" 2>/dev/null || {
        echo "rbd: export error: (32) Broken pipe" >&2; exit 32; }
    exit 0
fi
if [ -f "$FAKE_RBD_DIR/fail" ]; then
    head -c 4096 "$file"
    echo "rbd: export error: (5) Input/output error" >&2
    exit 5
fi
exec cat "$file"
'''


class TestRbdReadBack(testtools.TestCase):
    """An RBD image streamed by `rbd export` (a fake rbd on PATH) and cut
    to the layout's length."""

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        bindir = os.path.join(self.dir, 'bin')
        os.makedirs(bindir)
        rbd = os.path.join(bindir, 'rbd')
        with open(rbd, 'w') as f:
            f.write(FAKE_RBD)
        os.chmod(rbd, 0o755)
        self.host = access.LabComputeHost(
            'n1', ['env', 'PATH=%s:/usr/bin:/bin' % bindir,
                   'FAKE_RBD_DIR=%s' % self.dir],
            os.path.join(self.dir, 'libvirtd.log'),
            instances_path=self.dir,
            libvirtd_log_path=os.path.join(self.dir, 'libvirtd.log'))
        self.image = access.RbdImage('vms', UUID + '_disk', 'admin',
                                     '/etc/ceph/ceph.conf')
        # 16 MiB that the reader cuts: more than a pipe holds, so that
        # `rbd export` is still writing when head has read enough.
        self.data = os.urandom(1 << 20) * 16
        with open(os.path.join(self.dir, 'vms_%s_disk' % UUID), 'wb') as f:
            f.write(self.data)

    def _read(self, gzipped, length):
        self.host.gzip_disk_stream = gzipped
        with self.host.image(self.image, length) as image:
            return image[:]

    def test_streamed_and_cut_to_the_layout(self):
        self.assertEqual(self.data[:12288], self._read(False, 12288))
        with open(os.path.join(self.dir, 'calls')) as f:
            calls = f.read().splitlines()
        self.assertEqual(
            ['--id admin --conf /etc/ceph/ceph.conf info vms/%s_disk' % UUID,
             '--id admin --conf /etc/ceph/ceph.conf export --no-progress '
             'vms/%s_disk -' % UUID], calls)

    def test_streamed_gzipped_as_over_ssh(self):
        self.assertEqual(self.data[:(1 << 20) + 5],
                         self._read(True, (1 << 20) + 5))

    def test_rbd_that_reports_the_broken_pipe_is_cut_not_failed(self):
        # The real rbd ignores SIGPIPE: head's cut is its EPIPE, exit 32.
        open(os.path.join(self.dir, 'epipe'), 'w').close()
        self.assertEqual(self.data[:12288], self._read(False, 12288))
        self.assertEqual(self.data[:8192], self._read(True, 8192))

    def test_a_broken_pipe_without_a_cut_is_a_failure(self):
        script = access._piped('producer', False, None, cut_status=(141, 32))
        self.assertIn('case " 0  "', script)

    def test_whole_image_without_a_length(self):
        self.assertEqual(self.data, self._read(False, None))

    def test_a_missing_image_is_an_error_not_an_empty_image(self):
        self.image = access.RbdImage('vms', 'nothing_disk')
        self.assertRaisesRegex(access.HostAccessError, 'No such file',
                               self._read, False, 4096)

    def test_a_failed_export_is_an_error_not_a_short_image(self):
        open(os.path.join(self.dir, 'fail'), 'w').close()
        self.assertRaisesRegex(access.HostAccessError, 'Input/output',
                               self._read, True, 1 << 20)

    def test_exists(self):
        self.assertTrue(self.host.image_exists(self.image))
        self.assertFalse(self.host.image_exists(
            access.RbdImage('vms', 'nothing_disk')))

    def test_qemu_spec(self):
        self.assertEqual('rbd:vms/%s_disk:id=admin:conf=/etc/ceph/ceph.conf'
                         % UUID, self.image.qemu_spec())


class TestBlockDeviceReadBack(testtools.TestCase):

    def test_script_reads_past_the_page_cache_and_cuts(self):
        script = access.read_script(access.BlockDevice('/dev/vg/volume-1'),
                                    True, 8192)
        self.assertIn('test -b /dev/vg/volume-1', script)
        self.assertIn('dd if=/dev/vg/volume-1 bs=1M iflag=direct', script)
        self.assertIn('| head -c 8192 | gzip -1 -c', script)
        self.assertIn('PIPESTATUS', script)

    def test_a_file_is_not_a_block_device(self):
        tmp = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(tmp, 'not-a-device')
        with open(path, 'wb') as f:
            f.write(b'x' * 4096)
        host = _local_host(tmp)

        def read():
            with host.image(access.BlockDevice(path), 4096):
                pass
        self.assertRaisesRegex(access.HostAccessError, 'no block device',
                               read)
        self.assertFalse(host.image_exists(access.BlockDevice(path)))


DOMAIN_XML = '''<domain type="qemu">
  <uuid>%s</uuid>
  <devices>
    <disk type="network" device="disk">
      <driver name="qemu" type="raw" cache="writeback"/>
      <auth username="cinder"><secret type="ceph" uuid="5f0c"/></auth>
      <source protocol="rbd" name="vms/%s_disk">
        <host name="10.254.0.254" port="6789"/>
      </source>
      <target dev="vda" bus="virtio"/>
    </disk>
    <disk type="network" device="disk">
      <source protocol="rbd" name="volumes/volume-6f1d"/>
      <target dev="vdb" bus="virtio"/>
      <serial>6f1d</serial>
    </disk>
    <disk type="block" device="disk">
      <source dev="/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-iqn-lun-1"/>
      <target dev="vdc" bus="virtio"/>
    </disk>
    <disk type="file" device="disk">
      <source file="/opt/stack/data/nova/instances/%s/disk.eph0"/>
      <target dev="vdd" bus="virtio"/>
    </disk>
    <disk type="file" device="cdrom">
      <target dev="sda" bus="sata"/>
      <readonly/>
    </disk>
  </devices>
</domain>''' % (UUID, UUID, UUID)


class TestDomainDisks(testtools.TestCase):

    def test_each_disk_by_its_target(self):
        disks = access.domain_disks(DOMAIN_XML, 'admin', '/etc/ceph/c.conf')
        self.assertEqual({
            'vda': access.RbdImage('vms', UUID + '_disk', 'admin',
                                   '/etc/ceph/c.conf'),
            'vdb': access.RbdImage('volumes', 'volume-6f1d', 'admin',
                                   '/etc/ceph/c.conf'),
            'vdc': access.BlockDevice(
                '/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-iqn-lun-1'),
            'vdd': access.FileImage(
                '/opt/stack/data/nova/instances/%s/disk.eph0' % UUID),
        }, disks)
