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

import inspect
import os
import re
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
MKFS_EXT4 = shutil.which('mkfs.ext4')
NEEDS_LOOP = testtools.skipUnless(LOSETUP and os.geteuid() == 0,
                                  'needs root and losetup')
TAG_RECORD = re.compile(r'MTP\.vdb (RUN|ACK|NOTE|DONE|ERR|FATAL) ')


def parse_tagged(text, tag):
    """history.parse of the records tagged *tag*.  Until history.parse
    takes a tag, the tagged records are untagged and parsed (the output
    holds no others)."""
    if 'tag' in inspect.signature(history.parse).parameters:
        return history.parse(text, tag=tag)
    assert 'MTP ' not in text, text
    return history.parse(text.replace('MTP.%s ' % tag, 'MTP '))


class AgentTestBase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        # a PATH of busybox applets only, as in the guest
        self.bin = os.path.join(self.dir, 'bin')
        os.mkdir(self.bin)
        for applet in ('sh', 'dd', 'head', 'sleep', 'usleep', 'blkdiscard',
                       'blockdev', 'tr', 'grep', 'rm', 'awk'):
            os.symlink(BUSYBOX, os.path.join(self.bin, applet))

    def run_agent(self, *args, **env):
        full_env = {'PATH': self.bin, 'TMPDIR': self.dir}
        full_env.update(env)
        return subprocess.run([BUSYBOX, 'sh', guest.AGENT_PATH] + list(args),
                              env=full_env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=120,
                              universal_newlines=True)

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


@testtools.skipUnless(HAVE_BUSYBOX, 'busybox is not installed')
class TestAgent(AgentTestBase):

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


@testtools.skipUnless(HAVE_BUSYBOX, 'busybox is not installed')
class TestAgentTagAndLabel(AgentTestBase):
    """A tag on every record (MTP_TAG) and a label written on a blank
    device (MTP_INIT=1), for nova's ephemeral disk beside vda."""

    def read(self, path):
        with open(path, 'rb') as f:
            return f.read()

    def blank(self, size, mkfs=False):
        path = os.path.join(self.dir, 'blank.raw')
        with open(path, 'wb') as f:
            f.truncate(size)
        if mkfs and MKFS_EXT4:
            # as nova formats an ephemeral disk
            subprocess.run([MKFS_EXT4, '-q', '-F', path], check=True)
        return path

    def test_bad_tag_and_init(self):
        out = self.run_agent('/dev/null', MTP_TAG='vd-b')
        self.assertEqual(1, out.returncode)
        self.assertEqual('MTP FATAL bad mtp.tag=vd-b\n', out.stdout)
        out = self.run_agent('/dev/null', MTP_INIT='yes')
        self.assertEqual('MTP FATAL bad mtp.init=yes\n', out.stdout)
        out = self.run_agent('/dev/null', MTP_TAG='vdb', MTP_DELAY_MS='x')
        self.assertIn('MTP.vdb FATAL bad mtp.delay_ms=x', out.stdout)

    def test_fatal_is_tagged(self):
        path = os.path.join(self.dir, 'disk.raw')
        blocks.write_base_image(path, 3, 4, 'a1b2c3d4')
        out = self.run_agent(path, MTP_TAG='vdb', MTP_INIT='1')
        self.assertEqual(1, out.returncode)
        self.assertEqual('MTP.vdb FATAL %s is not a block device\n' % path,
                         out.stdout)

    @NEEDS_LOOP
    def test_tag_prefixes_every_record(self):
        path = os.path.join(self.dir, 'disk.raw')
        layout = blocks.write_base_image(path, 15, 32, 'a1b2c3d4')
        dev = self.loop_device(path)
        out = self.run_agent(dev, MTP_COUNT='40', MTP_TAG='vdb')
        self.assertEqual(0, out.returncode, out.stdout)
        lines = out.stdout.splitlines()
        self.assertEqual(43, len(lines), out.stdout)  # RUN NOTE 40 DONE
        for line in lines:
            self.assertTrue(TAG_RECORD.match(line), line)
        self.assertEqual('MTP.vdb NOTE direct=1', lines[1])
        self.assertEqual('MTP.vdb DONE 40', lines[-1])
        # an untagged reader sees none of them
        plain = history.parse(out.stdout)
        self.assertEqual(-1, plain.last_seq)
        self.assertEqual(['no-run'], [p.kind for p in plain.problems])
        self.assertEqual(0, history.ack_count(out.stdout))
        h = parse_tagged(out.stdout, 'vdb')
        self.assertTrue(h.ok, h.problems)
        self.assertEqual((layout, 40), (h.layout, h.done))
        res = checker.check(h, self.read(path))
        self.assertEqual('INTACT', res.verdict, res.message)
        # byte for byte the untagged records, with the tag; and without a
        # tag, the records of before
        for tag in ('vdb', ''):
            if tag:
                text, run = out.stdout, h.run
            else:
                text = self.run_agent(dev, MTP_COUNT='40').stdout
                run = history.parse(text).run
            want = history.render(layout, run, 40, done=True, noise=False)
            want = want.replace('\r\n', '\n').replace(
                '\nMTP ACK 0 ', '\nMTP NOTE direct=1\nMTP ACK 0 ')
            if tag:
                want = want.replace('MTP ', 'MTP.%s ' % tag)
            self.assertEqual(want, text)

    @NEEDS_LOOP
    def test_blank_device_without_init_is_refused(self):
        path = self.blank(64 << 10)
        dev = self.loop_device(path)
        out = self.run_agent(dev, MTP_COUNT='5', MTP_TAG='vdb')
        self.assertEqual(1, out.returncode)
        self.assertEqual('MTP.vdb FATAL no MTPDISK1 label on %s\n' % dev,
                         out.stdout)
        self.assertEqual(bytes(64 << 10), self.read(path))

    @NEEDS_LOOP
    def test_labels_a_blank_formatted_device(self):
        # 64 MiB, formatted: the work region stops at 8192 blocks
        path = self.blank(64 << 20, mkfs=True)
        dev = self.loop_device(path)
        out = self.run_agent(dev, MTP_COUNT='100', MTP_TAG='vdb',
                             MTP_INIT='1')
        self.assertEqual(0, out.returncode, out.stdout)
        data = self.read(path)
        label, intact = blocks.parse_label(data[:blocks.BLOCK_SIZE])
        self.assertTrue(intact)
        self.assertEqual((1, 0, 1, blocks.DEFAULT_WORK_BLOCKS,
                          blocks.DEFAULT_STEP, 0), label[1:])
        self.assertEqual(blocks.label_block(label),
                         data[:blocks.BLOCK_SIZE])
        # the NOTE comes from the labelling's first write, before RUN
        self.assertTrue(out.stdout.startswith('MTP.vdb NOTE direct=1\n'
                                              'MTP.vdb RUN '), out.stdout)
        h = parse_tagged(out.stdout, 'vdb')
        self.assertTrue(h.ok, h.problems)
        self.assertEqual(label, h.layout)
        self.assertEqual(100, h.done)
        res = checker.check(h, data)
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertEqual(len(data) - label.size_bytes, res.trailing_bytes)
        # the generation-0 blocks are blocks.py's
        end = label.size_bytes
        self.assertEqual(
            blocks.render_blocks(label.image_id, 1, 8192, 0)[-4096:],
            data[end - 4096:end])

    @NEEDS_LOOP
    def test_second_boot_starts_a_new_run_on_the_label(self):
        # 48 blocks: a label and 47 work blocks, all rewritten by 60 writes
        path = self.blank(48 * 4096)
        dev = self.loop_device(path)
        runs = []
        for boot in range(2):
            out = self.run_agent(dev, MTP_COUNT='60', MTP_TAG='vdb',
                                 MTP_INIT='1')
            self.assertEqual(0, out.returncode, out.stdout)
            data = self.read(path)
            if boot == 0:
                label_block = data[:4096]
            h = parse_tagged(out.stdout, 'vdb')
            self.assertTrue(h.ok, h.problems)
            self.assertEqual((1, 0, 1, 47), h.layout[1:5])
            res = checker.check(h, data)
            self.assertEqual('INTACT', res.verdict, res.message)
            runs.append((h.layout, h.run))
        # the label was found, not written again: same image, new run
        self.assertEqual(label_block, data[:4096])
        self.assertEqual(runs[0][0], runs[1][0])
        self.assertNotEqual(runs[0][1], runs[1][1])
        self.assertEqual(1, out.stdout.count('NOTE'))

    @NEEDS_LOOP
    def test_a_labelling_cut_short_starts_again(self):
        path = self.blank(48 * 4096)
        with open(path, 'r+b') as f:
            f.write(b'MTPINIT1 image=0badc0de labelling ' + b'.' * 92 +
                    b'\n')
            f.write(b'\0' * (4096 - 128) + blocks.make_block('0badc0de', 1,
                                                             0))
        dev = self.loop_device(path)
        out = self.run_agent(dev, MTP_COUNT='10', MTP_TAG='vdb',
                             MTP_INIT='1')
        self.assertEqual(0, out.returncode, out.stdout)
        h = parse_tagged(out.stdout, 'vdb')
        self.assertNotEqual('0badc0de', h.layout.image_id)
        res = checker.check(h, self.read(path))
        self.assertEqual('INTACT', res.verdict, res.message)

    @NEEDS_LOOP
    def test_damaged_label_is_not_written_again(self):
        path = os.path.join(self.dir, 'disk.raw')
        blocks.write_base_image(path, 15, 32, 'a1b2c3d4')
        dev = self.loop_device(path)
        # the label's first line garbled, then the whole label zeroed
        for damage in (b'x' * 127 + b'\n', bytes(4096)):
            with open(path, 'r+b') as f:
                f.write(damage)
            before = self.read(path)
            out = self.run_agent(dev, MTP_COUNT='10', MTP_INIT='1')
            self.assertEqual(1, out.returncode)
            self.assertEqual('MTP FATAL no MTPDISK1 label on %s but MTP data '
                             'in its first blocks: damaged, not labelled '
                             'again\n' % dev, out.stdout)
            self.assertEqual(before, self.read(path))

    @NEEDS_LOOP
    def test_device_too_small_for_a_label(self):
        path = self.blank(4096)
        dev = self.loop_device(path)
        out = self.run_agent(dev, MTP_INIT='1')
        self.assertEqual(1, out.returncode)
        self.assertIn('MTP FATAL %s too small for a label (4096 bytes)' % dev,
                      out.stdout)
