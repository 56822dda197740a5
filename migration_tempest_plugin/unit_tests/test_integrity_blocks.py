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

import os

import fixtures
import testtools

from migration_tempest_plugin.integrity import blocks
from migration_tempest_plugin.integrity import checker


class TestRecord(testtools.TestCase):

    def test_record_shape(self):
        rec = blocks.make_record('deadbeef', 5, 3)
        self.assertEqual(64, len(rec))
        self.assertEqual(b'MTP1 deadbeef 00000005 00000003 587b81ff ',
                         rec[:41])
        self.assertEqual(b'.' * 22 + b'\n', rec[41:])

    def test_sum_matches_shell_arithmetic(self):
        # value printed by busybox ash for
        # $(( (0xdeadbeef ^ (5*2654435761) ^ (3*2246822519)) & 0xffffffff ))
        self.assertEqual(1484489215, blocks.record_sum('deadbeef', 5, 3))
        self.assertEqual(1484489215, blocks.record_sum(0xdeadbeef, 5, 3))

    def test_block_is_64_copies(self):
        blk = blocks.make_block('0000abcd', 77, 9)
        self.assertEqual(4096, len(blk))
        self.assertEqual(blk[:64] * 64, blk)

    def test_parse_roundtrip(self):
        rec = blocks.parse_record(blocks.make_record('0123abcd', 1234, 56))
        self.assertEqual(('0123abcd', 1234, 56), rec[:3])
        self.assertTrue(blocks.record_ok(rec))

    def test_parse_rejects_garbage(self):
        self.assertIsNone(blocks.parse_record(b'x' * 64))
        good = blocks.make_record('0123abcd', 1, 1)
        self.assertIsNone(blocks.parse_record(good[:-1] + b'.'))

    def test_bad_sum_detected(self):
        rec = bytearray(blocks.make_record('0123abcd', 1234, 56))
        rec[19] = ord('9')  # idx 1234 -> 1934, sum unchanged
        parsed = blocks.parse_record(bytes(rec))
        self.assertEqual(1934, parsed.idx)
        self.assertFalse(blocks.record_ok(parsed))

    def test_render_blocks_matches_make_block(self):
        data = blocks.render_blocks('00c0ffee', 10, 3, 4)
        self.assertEqual(b''.join(blocks.make_block('00c0ffee', i, 4)
                                  for i in (10, 11, 12)), data)

    def test_run_id_validation(self):
        self.assertEqual('abcdef01', blocks.check_run_id('abcdef01'))
        self.assertRaises(ValueError, blocks.check_run_id, 'ABCDEF01')
        self.assertRaises(ValueError, blocks.check_run_id, 'abc')


class TestInspect(testtools.TestCase):

    def test_good(self):
        info = blocks.inspect_block(blocks.make_block('0000abcd', 3, 2))
        self.assertTrue(info.ok)
        self.assertEqual(3, info.record.idx)

    def test_flipped_byte(self):
        blk = bytearray(blocks.make_block('0000abcd', 3, 2))
        blk[3000] ^= 0x20
        info = blocks.inspect_block(blk)
        self.assertFalse(info.ok)
        self.assertFalse(info.consistent)
        self.assertIn('1 of 8 sectors damaged', info.reason)

    def test_zeroed(self):
        info = blocks.inspect_block(b'\0' * 4096)
        self.assertEqual('zeroed', info.reason)

    def test_torn(self):
        old = blocks.make_block('0000abcd', 3, 1)
        new = blocks.make_block('0000abcd', 3, 2)
        info = blocks.inspect_block(new[:1024] + old[1024:])
        self.assertFalse(info.ok)
        self.assertIn('torn', info.reason)
        self.assertIn('0000abcd/3/1 x6', info.reason)
        self.assertIn('0000abcd/3/2 x2', info.reason)

    def test_consistent_bad_sum(self):
        rec = bytearray(blocks.make_record('0000abcd', 3, 2))
        rec[33] = ord('f') if rec[33] != ord('f') else ord('e')
        info = blocks.inspect_block(bytes(rec) * 64)
        self.assertTrue(info.consistent)
        self.assertIn('checksum mismatch', info.reason)

    def test_sector_mix(self):
        old = blocks.make_block('0000abcd', 3, 1)
        new = blocks.make_block('0000abcd', 3, 2)
        self.assertEqual('old', blocks.sector_mix(old, old, new))
        self.assertEqual('new', blocks.sector_mix(new, old, new))
        mixed = old[:512] + new[512:2048] + old[2048:]
        self.assertEqual('mixed', blocks.sector_mix(mixed, old, new))
        # a cut that is not on a sector boundary is no allowed mix
        self.assertIsNone(blocks.sector_mix(old[:100] + new[100:], old, new))


class TestLayout(testtools.TestCase):

    def test_default_is_64_mib(self):
        lay = blocks.make_layout(image_id='12345678')
        self.assertEqual(64 * 1024 * 1024, lay.size_bytes)
        self.assertEqual('label', lay.region(0))
        self.assertEqual('static', lay.region(1))
        self.assertEqual('static', lay.region(8191))
        self.assertEqual('work', lay.region(8192))
        self.assertEqual('work', lay.region(16383))
        self.assertIsNone(lay.region(16384))

    def test_sequence_visits_each_work_block_once_per_generation(self):
        lay = blocks.make_layout(63, 64, '12345678')
        first = [lay.seq_block(s) for s in range(64)]
        self.assertEqual(list(range(64, 128)), sorted(first))
        self.assertEqual(first, [lay.seq_block(s) for s in range(64, 128)])
        self.assertEqual([1] * 64, [lay.seq_gen(s) for s in range(64)])
        self.assertEqual(2, lay.seq_gen(64))

    def test_expected_gen_matches_replay(self):
        lay = blocks.make_layout(10, 37, '12345678')
        gens = {}
        for last in range(-1, 120):
            if last >= 0:
                gens[lay.seq_block(last)] = lay.seq_gen(last)
            for idx in range(lay.work_first, lay.work_first + 37):
                self.assertEqual(gens.get(idx, 0),
                                 lay.expected_gen(idx, last))

    def test_first_seq(self):
        lay = blocks.make_layout(10, 37, '12345678')
        for seq in range(37):
            self.assertEqual(seq, lay.first_seq(lay.seq_block(seq)))

    def test_validate(self):
        self.assertRaises(blocks.LayoutError, blocks.make_layout, 10,
                          1000003 * 2, '12345678')
        self.assertRaises(blocks.LayoutError, blocks.make_layout, 10, 0,
                          '12345678')
        self.assertRaises(ValueError, blocks.make_layout, 10, 10, 'xyz')
        bad = blocks.Layout('12345678', 1, 10, 12, 10, 7)
        self.assertRaises(blocks.LayoutError, bad.validate)

    def test_label_roundtrip(self):
        lay = blocks.make_layout(63, 64, '0badf00d')
        lab = blocks.label_block(lay)
        self.assertEqual(4096, len(lab))
        self.assertTrue(lab.startswith(
            b'MTPDISK1 image=0badf00d bs=4096 static=1+63 work=64+64 '
            b'step=1000003 ...'))
        self.assertEqual((lay, True), blocks.parse_label(lab))

    def test_damaged_label_still_read(self):
        lay = blocks.make_layout(63, 64, '0badf00d')
        lab = bytearray(blocks.label_block(lay))
        lab[20] = ord('X')          # first line damaged
        lab[128 * 5 + 3] = ord('X')  # and another one
        self.assertEqual((lay, False), blocks.parse_label(bytes(lab)))

    def test_no_label(self):
        self.assertEqual((None, False), blocks.parse_label(b'\0' * 4096))
        self.assertEqual((None, False), blocks.parse_label(
            blocks.make_block('0badf00d', 0, 0)))


class TestBaseImage(testtools.TestCase):

    def test_write_base_image(self):
        d = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(d, 'base.raw')
        lay = blocks.write_base_image(path, 63, 64, 'a1b2c3d4')
        with open(path, 'rb') as f:
            data = f.read()
        self.assertEqual(128 * 4096, len(data))
        self.assertEqual(blocks.label_block(lay), data[:4096])
        self.assertEqual(blocks.make_block('a1b2c3d4', 70, 0),
                         data[70 * 4096:71 * 4096])
        self.assertEqual(b''.join(blocks.iter_base_image(lay)), data)
        self.assertEqual('INTACT', checker.check(None, data).verdict)
        self.assertEqual([], [n for n in os.listdir(d) if 'tmp' in n])

    def test_random_image_id(self):
        d = self.useFixture(fixtures.TempDir()).path
        a = blocks.write_base_image(os.path.join(d, 'a'), 1, 3)
        b = blocks.write_base_image(os.path.join(d, 'b'), 1, 3)
        self.assertNotEqual(a.image_id, b.image_id)
