# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""The lab guest builder, on fake kernels and module trees."""

import gzip
import lzma
import os
import re
import shutil
import stat
import subprocess
import time

import fixtures
import testtools

from migration_tempest_plugin.integrity import blocks
from migration_tempest_plugin.integrity import guest
from migration_tempest_plugin.integrity import initramfs
from migration_tempest_plugin.integrity import smoke

BUSYBOX = shutil.which('busybox') or '/bin/busybox'
HAVE_STATIC_BUSYBOX = (os.path.exists(BUSYBOX) and
                       initramfs.is_static_elf(BUSYBOX))


def block_devices(count):
    """*count* block devices of this host whose names are tags, or
    fewer."""
    found = []
    for name in sorted(os.listdir('/dev')):
        path = os.path.join('/dev', name)
        try:
            if re.match(r'[a-z0-9]+\Z', name) and \
                    stat.S_ISBLK(os.stat(path).st_mode):
                found.append(path)
        except OSError:
            continue
        if len(found) == count:
            break
    return found


def read_newc(data):
    """Independent newc reader: {name: (mode, body, rdevmajor, rdevminor)}."""
    out = {}
    pos = 0
    while True:
        head = data[pos:pos + 110]
        assert head[:6] == b'070701', head[:6]
        f = [int(head[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, namesize = f[1], f[6], f[9], f[10], f[11]
        name = data[pos + 110:pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos:pos + size]
        pos += size
        pos += -pos % 4
        if name == 'TRAILER!!!':
            return out
        out[name] = (mode, body, rmaj, rmin)


class TestCpio(testtools.TestCase):

    def test_entries(self):
        w = initramfs.CpioWriter()
        w.file('a/b/c.txt', b'hello', 0o600)
        w.symlink('bin/sh', '/bin/busybox')
        w.chardev('dev/console', 5, 1)
        entries = read_newc(w.finish())
        self.assertEqual(stat.S_IFDIR, stat.S_IFMT(entries['a'][0]))
        self.assertEqual(stat.S_IFDIR, stat.S_IFMT(entries['a/b'][0]))
        mode, body, _, _ = entries['a/b/c.txt']
        self.assertEqual((stat.S_IFREG | 0o600, b'hello'), (mode, body))
        mode, body, _, _ = entries['bin/sh']
        self.assertTrue(stat.S_ISLNK(mode))
        self.assertEqual(b'/bin/busybox', body)
        mode, _, rmaj, rmin = entries['dev/console']
        self.assertTrue(stat.S_ISCHR(mode))
        self.assertEqual((5, 1), (rmaj, rmin))

    def test_deterministic(self):
        def build():
            w = initramfs.CpioWriter()
            w.file('x', b'1' * 7)
            return w.finish()
        self.assertEqual(build(), build())


class FakeKernelMixin(object):

    def make_tree(self, builtin=('virtio_pci_modern_dev',), xz=('virtio',)):
        d = self.useFixture(fixtures.TempDir()).path
        release = '6.1.0-99-cloud-amd64'
        boot = os.path.join(d, 'boot')
        moddir = os.path.join(d, 'modules', release)
        os.makedirs(boot)
        os.makedirs(os.path.join(moddir, 'kernel'))
        kernel = os.path.join(boot, 'vmlinuz-' + release)
        with open(kernel, 'wb') as f:
            f.write(b'fake kernel')
        dep = []
        for name in initramfs.VIRTIO_MODULES:
            if name in builtin:
                continue
            body = ('module %s' % name).encode()
            rel = 'kernel/%s.ko' % name
            if name in xz:
                rel += '.xz'
                body = lzma.compress(body)
            with open(os.path.join(moddir, rel), 'wb') as f:
                f.write(body)
            dep.append('%s:\n' % rel)
        with open(os.path.join(moddir, 'modules.dep'), 'w') as f:
            f.writelines(dep)
        with open(os.path.join(moddir, 'modules.builtin'), 'w') as f:
            f.writelines('kernel/drivers/virtio/%s.ko\n' % n for n in builtin)
        return d, kernel, moddir


class TestModules(testtools.TestCase, FakeKernelMixin):

    def test_find_modules_in_order_with_builtin_and_xz(self):
        _d, _kernel, moddir = self.make_tree()
        mods = initramfs.find_modules(moddir)
        self.assertEqual(list(initramfs.VIRTIO_MODULES), list(mods))
        self.assertIsNone(mods['virtio_pci_modern_dev'])
        self.assertTrue(mods['virtio'].endswith('virtio.ko.xz'))
        self.assertEqual(b'module virtio',
                         initramfs.read_module(mods['virtio']))
        self.assertEqual(b'module virtio_blk',
                         initramfs.read_module(mods['virtio_blk']))

    def test_missing_module(self):
        _d, _kernel, moddir = self.make_tree()
        os.unlink(os.path.join(moddir, 'modules.builtin'))
        self.assertRaises(initramfs.GuestBuildError, initramfs.find_modules,
                          moddir)

    def test_find_kernel(self):
        d, kernel, _moddir = self.make_tree()
        self.assertEqual((kernel, '6.1.0-99-cloud-amd64'),
                         initramfs.find_kernel(os.path.join(d, 'boot'),
                                               os.path.join(d, 'modules')))
        self.assertRaises(initramfs.GuestBuildError, initramfs.find_kernel,
                          os.path.join(d, 'boot'), os.path.join(d, 'none'))

    def test_find_kernel_prefers_cloud_then_generic(self):
        d = self.useFixture(fixtures.TempDir()).path
        boot, mods = os.path.join(d, 'boot'), os.path.join(d, 'modules')
        for release in ('6.8.0-50-generic', '6.8.0-9-generic'):
            os.makedirs(os.path.join(mods, release))
            os.makedirs(boot, exist_ok=True)
            open(os.path.join(boot, 'vmlinuz-' + release), 'w').close()
        # Ubuntu's generic kernels: the newest by version, not by text.
        self.assertEqual('6.8.0-50-generic',
                         initramfs.find_kernel(boot, mods)[1])
        os.makedirs(os.path.join(mods, '6.1.0-1-cloud-amd64'))
        open(os.path.join(boot, 'vmlinuz-6.1.0-1-cloud-amd64'), 'w').close()
        self.assertEqual('6.1.0-1-cloud-amd64',
                         initramfs.find_kernel(boot, mods)[1])

    def test_is_static_elf(self):
        d = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(d, 'not-elf')
        with open(path, 'wb') as f:
            f.write(b'#!/bin/sh\n')
        self.assertFalse(initramfs.is_static_elf(path))
        # the Python interpreter is dynamically linked
        self.assertFalse(initramfs.is_static_elf(os.path.realpath(
            shutil.which('python3') or '/usr/bin/python3')))


@testtools.skipUnless(HAVE_STATIC_BUSYBOX, 'busybox-static is not installed')
class TestBuildGuest(testtools.TestCase, FakeKernelMixin):

    def setUp(self):
        super().setUp()
        self.d, self.kernel, self.moddir = self.make_tree()
        self.out = os.path.join(self.d, 'out')
        self.agent = os.path.join(self.d, 'agent.sh')
        shutil.copy(guest.AGENT_PATH, self.agent)

    def build(self):
        return guest.build_guest(self.out, kernel=self.kernel,
                                 modules_dir=self.moddir, busybox=BUSYBOX,
                                 agent=self.agent)

    def test_initramfs_contents(self):
        img = self.build()
        self.assertEqual(os.path.join(self.out, 'vmlinuz'), img.kernel)
        with open(img.kernel, 'rb') as f:
            self.assertEqual(b'fake kernel', f.read())
        with open(img.initrd, 'rb') as f:
            entries = read_newc(gzip.decompress(f.read()))
        init = entries['init'][1].decode()
        # built-in modules are skipped, the others loaded in order
        self.assertIn('for m in virtio_ring virtio virtio_pci_legacy_dev '
                      'virtio_pci virtio_blk; do', init)
        self.assertIn('mount -t devtmpfs devtmpfs /dev', init)
        self.assertIn('exec /bin/sh /mtp/agent.sh', init)
        self.assertEqual(b'module virtio',
                         entries['lib/modules/mtp/virtio.ko'][1])
        self.assertNotIn('lib/modules/mtp/virtio_pci_modern_dev.ko', entries)
        with open(guest.AGENT_PATH, 'rb') as f:
            self.assertEqual(f.read(), entries['mtp/agent.sh'][1])
        self.assertTrue(entries['init'][0] & 0o111)
        self.assertEqual(b'/bin/busybox', entries['bin/sh'][1])
        self.assertTrue(stat.S_ISCHR(entries['dev/console'][0]))
        self.assertIn('cmdline', img._fields)

    def test_cached_and_rebuilt_on_change(self):
        img = self.build()
        first = os.stat(img.initrd)
        with open(img.initrd, 'rb') as f:
            first_data = f.read()
        again = self.build()
        self.assertEqual(img, again)
        self.assertEqual(first.st_ino, os.stat(img.initrd).st_ino)
        with open(self.agent, 'a') as f:
            f.write('# changed\n')
        self.build()
        with open(img.initrd, 'rb') as f:
            self.assertNotEqual(first_data, f.read())

    def test_damaged_output_is_rebuilt(self):
        img = self.build()
        with open(img.initrd, 'wb') as f:
            f.write(b'junk')
        self.build()
        with open(img.initrd, 'rb') as f:
            self.assertEqual(b'\x1f\x8b', f.read(2))


class TestBaseDisk(testtools.TestCase):

    def test_written_then_reused(self):
        d = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(d, 'base.raw')
        lay = guest.write_base_disk(path, 7, 8)
        ino = os.stat(path).st_ino
        self.assertEqual(lay, guest.write_base_disk(path, 7, 8))
        self.assertEqual(ino, os.stat(path).st_ino)
        # a damaged file or other sizes are written again
        with open(path, 'r+b') as f:
            f.seek(5 * blocks.BLOCK_SIZE)
            f.write(b'X')
        lay2 = guest.write_base_disk(path, 7, 8)
        self.assertNotEqual(lay.image_id, lay2.image_id)
        lay3 = guest.write_base_disk(path, 7, 9)
        self.assertEqual(9, lay3.work_count)
        self.assertEqual(17 * blocks.BLOCK_SIZE, os.path.getsize(path))

    def test_qemu_command(self):
        img = guest.GuestImage('/k', '/i', guest.DEFAULT_CMDLINE)
        cmd = smoke.qemu_command(img, '/d.qcow2', '/c.log')
        self.assertEqual(['-accel', 'tcg'], cmd[1:3])
        self.assertNotIn('-enable-kvm', cmd)
        self.assertIn('file=/d.qcow2,if=virtio,cache=none,format=qcow2', cmd)
        self.assertIn('file:/c.log', cmd)
        self.assertIn('console=ttyS0 quiet loglevel=0', cmd)


@testtools.skipUnless(os.path.exists(BUSYBOX), 'busybox is not installed')
class TestInit(testtools.TestCase):
    """The guest's /init, run by busybox on this host with its paths
    moved into a folder: the proc, sysfs and devtmpfs mounts and insmod
    do nothing, and agent.sh is a stub that prints what it was given."""

    def init_text(self):
        return initramfs.INIT_TEMPLATE % {'modules': 'virtio_ring virtio_blk'}

    def test_syntax(self):
        out = subprocess.run([BUSYBOX, 'sh', '-n', '-c', self.init_text()],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True)
        self.assertEqual(0, out.returncode, out.stdout)

    def run_init(self, cmdline, lines):
        d = self.useFixture(fixtures.TempDir()).path
        bin_ = os.path.join(d, 'bin')
        os.mkdir(bin_)
        for stub in ('mount', 'insmod', 'usleep'):
            with open(os.path.join(bin_, stub), 'w') as f:
                f.write('#!%s sh\n' % BUSYBOX)
            os.chmod(os.path.join(bin_, stub), 0o755)
        console = os.path.join(d, 'console')
        agent = os.path.join(d, 'agent.sh')
        with open(agent, 'w') as f:
            f.write('echo "agent $1 tag=${MTP_TAG-} init=${MTP_INIT-}"\n')
        with open(os.path.join(d, 'cmdline'), 'w') as f:
            f.write(cmdline + '\n')
        text = self.init_text()
        for old, new in (
                ('export PATH=/bin:/sbin:/usr/bin:/usr/sbin',
                 'export PATH=%s' % bin_),
                ('/proc/cmdline', os.path.join(d, 'cmdline')),
                ('<"/dev/console"', '</dev/null'),
                ('>"/dev/console"', '>>%s' % console),
                ('/bin/sh /mtp/agent.sh', '%s sh %s' % (BUSYBOX, agent))):
            self.assertIn(old, text)
            text = text.replace(old, new)
        subprocess.run([BUSYBOX, 'sh', '-c', text], timeout=60, check=True)
        deadline = time.monotonic() + 10
        while True:
            with open(console) as f:
                out = f.read().splitlines()
            if len(out) >= lines or time.monotonic() > deadline:
                return sorted(out)
            time.sleep(0.05)

    def test_without_a_second_disk(self):
        dev, = block_devices(1) or self.skipTest('no block device')
        self.assertEqual(['agent  tag= init='],
                         self.run_init('quiet mtp.dev=%s' % dev, 1))

    def test_second_agent_tagged_and_labelling(self):
        devs = block_devices(2)
        if len(devs) < 2:
            self.skipTest('fewer than two block devices')
        out = self.run_init('mtp.dev=%s mtp.disk2=%s' % tuple(devs), 2)
        self.assertEqual(sorted(['agent  tag= init=',
                                 'agent %s tag=%s init=1' % (
                                     devs[1], os.path.basename(devs[1]))]),
                         out)

    def test_second_disk_missing_or_unusable(self):
        dev, = block_devices(1) or self.skipTest('no block device')
        badname = os.path.join(self.useFixture(fixtures.TempDir()).path,
                               'vd-b')
        os.symlink(dev, badname)
        for disk2, note in (('/nonexistent/vdz', 'no /nonexistent/vdz'),
                            (dev, '%s is the first disk' % dev),
                            (badname, 'no tag for %s' % badname)):
            out = self.run_init('mtp.dev=%s mtp.disk2=%s' % (dev, disk2), 2)
            self.assertEqual(['MTP NOTE %s' % note,
                              'agent  tag= init='], out)
