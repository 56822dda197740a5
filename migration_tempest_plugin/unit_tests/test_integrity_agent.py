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

"""agent.sh run by the host's busybox (the shell the lab guest uses)."""

import os
import shutil
import subprocess

import fixtures
import testtools

from migration_tempest_plugin.integrity import blocks
from migration_tempest_plugin.integrity import checker
from migration_tempest_plugin.integrity import guest
from migration_tempest_plugin.integrity import history

BUSYBOX = shutil.which('busybox') or '/bin/busybox'
HAVE_BUSYBOX = os.path.exists(BUSYBOX)
LOSETUP = shutil.which('losetup')


@testtools.skipUnless(HAVE_BUSYBOX, 'busybox is not installed')
class TestAgent(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        # a PATH of busybox applets only, as in the guest
        self.bin = os.path.join(self.dir, 'bin')
        os.mkdir(self.bin)
        for applet in ('sh', 'dd', 'head', 'sleep', 'usleep', 'blkdiscard'):
            os.symlink(BUSYBOX, os.path.join(self.bin, applet))

    def run_agent(self, *args, **env):
        full_env = {'PATH': self.bin, 'TMPDIR': self.dir}
        full_env.update(env)
        return subprocess.run([BUSYBOX, 'sh', guest.AGENT_PATH] + list(args),
                              env=full_env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=120,
                              universal_newlines=True)

    def test_syntax(self):
        out = subprocess.run([BUSYBOX, 'sh', '-n', guest.AGENT_PATH],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True)
        self.assertEqual(0, out.returncode, out.stdout)

    def test_refuses_a_regular_file(self):
        path = os.path.join(self.dir, 'disk.raw')
        blocks.write_base_image(path, 3, 4, 'a1b2c3d4')
        with open(path, 'rb') as f:
            before = f.read()
        out = self.run_agent(path, MTP_COUNT='5')
        self.assertEqual(1, out.returncode)
        self.assertIn('MTP FATAL %s is not a block device' % path, out.stdout)
        self.assertNotIn('MTP ACK', out.stdout)
        with open(path, 'rb') as f:
            self.assertEqual(before, f.read())
        h = history.parse(out.stdout)
        self.assertEqual(['fatal', 'no-run'], [p.kind for p in h.problems])

    def test_rejects_bad_settings(self):
        out = self.run_agent('/dev/null', MTP_DELAY_MS='x')
        self.assertEqual(1, out.returncode)
        self.assertIn('MTP FATAL bad mtp.delay_ms=x', out.stdout)

    def loop_device(self, path):
        attach = subprocess.run([LOSETUP, '-f', '--show', path],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT,
                                universal_newlines=True)
        if attach.returncode != 0:
            self.skipTest('no loop device: %s' % attach.stdout.strip())
        dev = attach.stdout.strip()
        self.addCleanup(subprocess.run, [LOSETUP, '-d', dev])
        return dev

    @testtools.skipUnless(LOSETUP and os.geteuid() == 0,
                          'needs root and losetup')
    def test_writes_on_a_loop_device(self):
        path = os.path.join(self.dir, 'disk.raw')
        layout = blocks.write_base_image(path, 15, 32, 'a1b2c3d4')
        dev = self.loop_device(path)
        out = self.run_agent(dev, MTP_COUNT='80')
        self.assertEqual(0, out.returncode, out.stdout)
        h = history.parse(out.stdout)
        self.assertTrue(h.ok, h.problems)
        self.assertEqual(layout, h.layout)
        self.assertEqual(80, h.done)
        self.assertEqual(79, h.last_seq)
        self.assertTrue(h.notes[0].startswith('direct='), h.notes)
        with open(path, 'rb') as f:
            data = f.read()
        res = checker.check(h, data)
        self.assertEqual('INTACT', res.verdict, res.message)
        # the blocks the shell built are byte-identical to blocks.py's
        idx = layout.seq_block(79)
        self.assertEqual(blocks.make_block(h.run, idx, 3),
                         data[idx * 4096:(idx + 1) * 4096])

    @testtools.skipUnless(LOSETUP and os.geteuid() == 0,
                          'needs root and losetup')
    def test_zeroes_and_discards_on_a_loop_device(self):
        path = os.path.join(self.dir, 'disk.raw')
        layout = blocks.write_base_image(path, 15, 32, 'a1b2c3d4',
                                         zero_every=3)
        dev = self.loop_device(path)
        out = self.run_agent(dev, MTP_COUNT='80')
        self.assertEqual(0, out.returncode, out.stdout)
        self.assertIn(' step=%d zero=3\n' % layout.step, out.stdout)
        h = history.parse(out.stdout)
        self.assertTrue(h.ok, h.problems)
        self.assertEqual(layout, h.layout)
        with open(path, 'rb') as f:
            data = f.read()
        res = checker.check(h, data)
        self.assertEqual('INTACT', res.verdict, res.message)
        # the last ops of each kind left zeros (a loop device's discard
        # punches a hole in the file)
        for op in (blocks.ZERO, blocks.DISCARD):
            seq = max(s for s in range(80) if layout.op(s) == op)
            if seq + layout.work_count >= 80:
                idx = layout.seq_block(seq)
                self.assertEqual(blocks.ZERO_BLOCK,
                                 data[idx * 4096:(idx + 1) * 4096], op)
