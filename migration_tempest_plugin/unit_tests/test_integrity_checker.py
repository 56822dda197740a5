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

"""The checker on hand-made faults, each detected and located."""

import dataclasses
import json

import testtools

from migration_tempest_plugin.integrity import bench
from migration_tempest_plugin.integrity import blocks
from migration_tempest_plugin.integrity import checker
from migration_tempest_plugin.integrity import console
from migration_tempest_plugin.integrity import history

IMG = 'a1b2c3d4'
RUN = '7e57c0de'
LAYOUT = blocks.make_layout(63, 64, IMG)   # 128 blocks, work = 64..127
BS = blocks.BLOCK_SIZE
WRITES = 100                               # 1.5 generations of the work area


def base():
    return bytearray().join(blocks.iter_base_image(LAYOUT))


def put(data, idx, block):
    data[idx * BS:(idx + 1) * BS] = block


def get(data, idx):
    return bytes(data[idx * BS:(idx + 1) * BS])


def disk(writes=WRITES, run=RUN):
    """The image after *writes* writes, replayed one by one."""
    data = base()
    for seq in range(writes):
        idx = LAYOUT.seq_block(seq)
        put(data, idx, blocks.make_block(run, idx, LAYOUT.seq_gen(seq)))
    return data


def hist(writes=WRITES, **kw):
    return history.parse(history.render(LAYOUT, RUN, writes, **kw))


def check(h, data, **kwargs):
    res = checker.check(h, bytes(data), **kwargs)
    # every result must serialise
    json.dumps(res.to_dict())
    return res


class TestClean(testtools.TestCase):

    def test_intact(self):
        res = check(hist(), disk())
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertEqual(128, res.checked_blocks)
        self.assertEqual(128, res.intact_blocks)
        self.assertEqual(100, res.acked_writes)
        self.assertEqual(0, res.lost_writes)
        self.assertEqual([], res.first_offsets)
        self.assertEqual({'seq': 100, 'block': LAYOUT.seq_block(100),
                          'gen': 2, 'state': 'old'}, res.inflight)
        self.assertTrue(res.message.startswith('INTACT: '))

    def test_intact_after_done(self):
        res = check(hist(done=True), disk())
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertIsNone(res.inflight)

    def test_pristine_image_without_history(self):
        res = check(None, base())
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertEqual(0, res.acked_writes)

    def test_no_history_on_a_written_disk_is_error(self):
        # Issue 9: check(None, written disk) said DATA-LOSS, every written
        # block "misplaced"; without the history there is no verdict.
        res = check(None, disk())
        self.assertEqual('ERROR', res.verdict, res.message)
        self.assertIn('no history, but 64 work blocks differ from the '
                      'never-used image', res.message)
        self.assertEqual(0, res.lost_writes)

    def test_no_history_damaged_static_region_is_data_loss(self):
        # a never-used image still has its static blocks to lose
        data = base()
        data[3 * BS + 7] ^= 0x01
        res = check(None, data)
        self.assertEqual('DATA-LOSS', res.verdict, res.message)
        self.assertEqual([(3 * BS, 'corrupt')], res.first_offsets)

    def test_run_without_acks(self):
        res = check(hist(0), base())
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertEqual(LAYOUT.seq_block(0), res.inflight['block'])

    def test_console_text_accepted(self):
        res = checker.check(history.render(LAYOUT, RUN, WRITES),
                            bytes(disk()))
        self.assertEqual('INTACT', res.verdict, res.message)

    def test_memoryview_and_trailing_bytes(self):
        data = disk() + b'\0' * 8192
        res = checker.check(hist(), memoryview(data))
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertEqual(8192, res.trailing_bytes)


class TestFaults(testtools.TestCase):

    def test_lost_write(self):
        data = disk()
        seq = 70                       # overwrote gen 1 of its block
        idx = LAYOUT.seq_block(seq)
        put(data, idx, blocks.make_block(RUN, idx, 1))
        res = check(hist(), data)
        self.assertEqual('DATA-LOSS', res.verdict)
        self.assertEqual(1, res.stale_blocks)
        self.assertEqual(1, res.lost_writes)
        self.assertEqual([seq], res.lost_seqs)
        self.assertEqual([(idx * BS, 'stale')], res.first_offsets)
        f = res.findings[0]
        self.assertEqual(idx, f.block)
        self.assertIn('gen 1, last acknowledged gen 2 (seq 70)', f.detail)
        self.assertIn('stale block %d' % idx, res.message)

    def test_lost_first_generation_write(self):
        data = disk()
        seq = 80                       # the only write to its block
        idx = LAYOUT.seq_block(seq)
        put(data, idx, blocks.make_block(IMG, idx, 0))
        res = check(hist(), data)
        self.assertEqual('DATA-LOSS', res.verdict)
        self.assertEqual([seq], res.lost_seqs)
        self.assertEqual('stale', res.findings[0].kind)

    def test_torn_block(self):
        data = disk()
        idx = LAYOUT.seq_block(70)
        new = blocks.make_block(RUN, idx, 2)
        old = blocks.make_block(RUN, idx, 1)
        put(data, idx, new[:2048] + old[2048:])
        res = check(hist(), data)
        self.assertEqual('DATA-LOSS', res.verdict)
        self.assertEqual(1, res.corrupt_blocks)
        self.assertEqual([70], res.lost_seqs)
        f = res.findings[0]
        self.assertEqual((idx * BS, 'corrupt'), (f.offset, f.kind))
        self.assertIn('torn', f.detail)
        # the first byte that differs is the last digit of gen in sector 4
        self.assertEqual(idx * BS + 2048 + 30, f.first_byte)

    def test_misplaced_block(self):
        data = disk()
        src, dst = LAYOUT.seq_block(90), LAYOUT.seq_block(91)
        put(data, dst, get(data, src))
        res = check(hist(), data)
        self.assertEqual('DATA-LOSS', res.verdict)
        self.assertEqual(1, res.misplaced_blocks)
        self.assertEqual([91], res.lost_seqs)
        f = res.findings[0]
        self.assertEqual((dst * BS, 'misplaced'), (f.offset, f.kind))
        self.assertIn('holds block %d' % src, f.detail)

    def test_foreign_run(self):
        data = disk()
        idx = LAYOUT.seq_block(50)
        put(data, idx, blocks.make_block('0ddba11a', idx, 1))
        res = check(hist(), data)
        self.assertEqual('DATA-LOSS', res.verdict)
        self.assertEqual(1, res.misplaced_blocks)
        self.assertIn('foreign block: run 0ddba11a', res.findings[0].detail)

    def test_flipped_byte_in_work_region(self):
        data = disk()
        idx = LAYOUT.seq_block(10)
        pos = idx * BS + 777
        data[pos] ^= 0x01
        res = check(hist(), data)
        self.assertEqual('DATA-LOSS', res.verdict)
        self.assertEqual(1, res.corrupt_blocks)
        self.assertEqual(1, res.lost_writes)
        self.assertEqual(pos, res.findings[0].first_byte)
        self.assertEqual([(idx * BS, 'corrupt')], res.first_offsets)

    def test_flipped_byte_in_static_region(self):
        data = disk()
        pos = 33 * BS + 4095
        data[pos] ^= 0x80
        res = check(hist(), data)
        self.assertEqual('DATA-LOSS', res.verdict)
        self.assertEqual(1, res.corrupt_blocks)
        self.assertEqual(0, res.lost_writes)     # no acked write there
        f = res.findings[0]
        self.assertEqual((33, pos), (f.block, f.first_byte))
        self.assertIn('static block', f.detail)

    def test_consistent_garbage_in_static_region(self):
        data = disk()
        put(data, 5, b'\0' * BS)
        put(data, 6, blocks.make_block(IMG, 6, 3))
        res = check(hist(), data)
        self.assertEqual(['corrupt', 'misplaced'],
                         [f.kind for f in res.findings])
        self.assertIn('zeroed', res.findings[0].detail)
        self.assertIn('foreign', res.findings[1].detail)

    def test_many_faults_first_offsets_sorted_and_capped(self):
        data = disk()
        for idx in range(100, 128):
            data[idx * BS] ^= 0xff
        data[2 * BS + 5] ^= 0xff
        res = check(hist(), data)
        self.assertEqual(29, res.corrupt_blocks)
        self.assertEqual(10, len(res.first_offsets))
        self.assertEqual(2 * BS, res.first_offsets[0][0])
        self.assertEqual([i * BS for i in range(100, 109)],
                         [o for o, _ in res.first_offsets[1:]])
        self.assertEqual(10, len(res.to_dict()['first_offsets']))

    def test_damaged_label(self):
        data = disk()
        data[130] ^= 0x01
        res = check(hist(), data)
        self.assertEqual('DATA-LOSS', res.verdict)
        self.assertEqual([(0, 'corrupt')], res.first_offsets)
        self.assertEqual(130, res.findings[0].first_byte)
        self.assertIn('label damaged', res.findings[0].detail)

    def test_wiped_label_uses_run_line(self):
        data = disk()
        put(data, 0, b'\0' * BS)
        res = check(hist(), data)
        self.assertEqual('DATA-LOSS', res.verdict)
        self.assertEqual(1, res.corrupt_blocks)
        self.assertIn('label unreadable', res.findings[0].detail)
        # without a history the layout is unknown
        res = check(None, data)
        self.assertEqual('ERROR', res.verdict)
        self.assertIn('no disk label', res.message)

    def test_blank_disk(self):
        res = check(hist(), bytes(LAYOUT.size_bytes))
        self.assertEqual('DATA-LOSS', res.verdict)
        self.assertEqual(128, res.corrupt_blocks)
        self.assertEqual(64, res.lost_writes)

    def test_short_image(self):
        data = disk()[:120 * BS + 100]
        res = check(hist(), data)
        self.assertEqual('DATA-LOSS', res.verdict)
        self.assertEqual(8, res.corrupt_blocks)
        self.assertEqual((120 * BS, 'corrupt'), res.first_offsets[0])
        self.assertEqual(120 * BS + 100, res.findings[0].first_byte)
        self.assertIn('missing', res.findings[0].detail)

    def test_wrong_disk(self):
        other = blocks.make_layout(63, 64, '99999999')
        data = bytearray().join(blocks.iter_base_image(other))
        res = check(hist(), data)
        self.assertEqual('ERROR', res.verdict)
        self.assertIn('wrong disk', res.message)


class TestInFlight(testtools.TestCase):
    """The write after the last ACK may be old, new or a sector mix."""

    def setUp(self):
        super().setUp()
        self.idx = LAYOUT.seq_block(WRITES)
        self.old = blocks.make_block(RUN, self.idx, 1)
        self.new = blocks.make_block(RUN, self.idx, 2)

    def test_old(self):
        res = check(hist(), disk())
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertEqual('old', res.inflight['state'])

    def test_new(self):
        data = disk()
        put(data, self.idx, self.new)
        res = check(hist(), data)
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertEqual('new', res.inflight['state'])
        self.assertEqual(self.idx, res.inflight['block'])

    def test_mixed(self):
        data = disk()
        put(data, self.idx, self.new[:1536] + self.old[1536:3584] +
            self.new[3584:])
        res = check(hist(), data)
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertEqual('mixed', res.inflight['state'])

    def test_mix_inside_a_sector_is_corrupt(self):
        data = disk()
        # cut inside the gen field of the record at bytes 960..1023
        put(data, self.idx, self.new[:988] + self.old[988:])
        res = check(hist(), data)
        self.assertEqual('DATA-LOSS', res.verdict)
        self.assertEqual('damaged', res.inflight['state'])
        self.assertEqual([(self.idx * BS, 'corrupt')], res.first_offsets)
        # its old content (gen 1) had been acknowledged: that write is lost
        self.assertEqual([WRITES - 64], res.lost_seqs)

    def test_new_content_not_allowed_after_done(self):
        data = disk()
        put(data, self.idx, self.new)
        res = check(hist(done=True), data)
        self.assertEqual('ERROR', res.verdict)
        self.assertEqual(1, res.ahead_blocks)
        self.assertEqual([(self.idx * BS, 'ahead')], res.first_offsets)

    def test_only_the_next_write_is_in_flight(self):
        data = disk(WRITES + 2)
        res = check(hist(), data)
        self.assertEqual('ERROR', res.verdict)
        self.assertEqual(1, res.ahead_blocks)
        self.assertEqual(LAYOUT.seq_block(WRITES + 1),
                         res.findings[0].block)
        self.assertEqual('new', res.inflight['state'])


class TestHistoryProblems(testtools.TestCase):

    def test_truncated_history(self):
        # the console lost its tail after seq 50; the disk has 100 writes
        res = check(hist(51), disk())
        self.assertEqual('ERROR', res.verdict)
        # seq 51 is the in-flight write; 52..63 wrote gen 1 where gen 0 was
        # expected; 64..99 wrote gen 2 over the blocks of seq 0..35.
        self.assertEqual(12 + 36, res.ahead_blocks)
        self.assertEqual(0, res.lost_writes)
        self.assertEqual('new', res.inflight['state'])
        self.assertIn('history incomplete', res.message)
        self.assertEqual(
            sorted(LAYOUT.seq_block(s) * BS for s in
                   list(range(52, 64)) + list(range(0, 36)))[:10],
            [o for o, _ in res.first_offsets])

    def test_truncated_record_in_history(self):
        text = history.render(LAYOUT, RUN, WRITES).splitlines(True)
        text[40] = text[40][:16] + '\n'
        h = history.parse(''.join(text))
        res = check(h, disk())
        self.assertEqual('ERROR', res.verdict)
        self.assertEqual(['malformed', 'gap'],
                         [p.kind for p in res.history_problems])
        self.assertEqual(41, res.history_problems[0].line)
        self.assertIn('console 0 line 41', res.message)

    def test_partial_last_line_is_fine(self):
        # the cut line is the start of ACK 100, which the guest prints
        # only once write 100 is durable (issue 18, test_integrity_tail):
        # write 100 must be on the disk, and 101 is in flight
        text = history.render(LAYOUT, RUN, WRITES) + 'MTP ACK 100 1'
        res = check(history.parse(text), disk(WRITES + 1))
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertEqual(WRITES + 1, res.inflight['seq'])
        res = check(history.parse(text), disk())
        self.assertEqual('DATA-LOSS', res.verdict, res.message)
        self.assertEqual([100], res.lost_seqs)

    def test_console_ending_inside_done_is_intact(self):
        # Issue 9: a console cut inside "MTP DONE 100" was a gap (ERROR).
        text = history.render(LAYOUT, RUN, WRITES) + 'MTP DONE 1'
        res = check(history.parse(text), disk())
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertEqual([], res.history_problems)
        # not known to be done: the next write may be in flight
        self.assertEqual(WRITES, res.inflight['seq'])

    def test_seq_gap(self):
        text = history.render(LAYOUT, RUN, WRITES).splitlines(True)
        del text[2 + 30]
        res = check(history.parse(''.join(text)), disk())
        self.assertEqual('ERROR', res.verdict)
        self.assertEqual(0, res.lost_writes)
        p = res.history_problems[0]
        self.assertEqual(('gap', 33), (p.kind, p.line))  # ack of seq 31
        self.assertIn('seq 30..30 missing', res.message)

    def test_tolerated_gap(self):
        text = history.render(LAYOUT, RUN, WRITES).splitlines(True)
        del text[2 + 30]
        res = check(history.parse(''.join(text)), disk(), tolerate=('gap',))
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertEqual(['gap'], [p.kind for p in res.history_problems])
        # Only the kinds named are tolerated.
        text[5] = text[5].replace('MTP ACK', 'MTP ACK x')
        res = check(history.parse(''.join(text)), disk(), tolerate=('gap',))
        self.assertEqual('ERROR', res.verdict)

    def test_tolerate_is_only_step_three(self):
        # What oracle.rst says of tolerate: a tolerated problem is
        # reported but lets the disk be INTACT; fatal kinds, loss and
        # ahead blocks are judged as without it.
        every = tuple(history.FATAL_KINDS) + ('gap', 'order', 'malformed',
                                              'bad-sum')
        text = history.render(LAYOUT, RUN, WRITES).splitlines(True)
        del text[2 + 30]
        res = check(history.parse(''.join(text)), disk(), tolerate=every)
        self.assertEqual('INTACT', res.verdict)
        self.assertIn('history: 1 problems, first gap', res.message)
        del text[1]                                  # the RUN line
        res = check(history.parse(''.join(text)), disk(), tolerate=every)
        self.assertEqual('ERROR', res.verdict)
        self.assertIn('no-run', res.message)
        res = check(hist(51), disk(), tolerate=every)
        self.assertEqual('ERROR', res.verdict)
        self.assertIn('history incomplete', res.message)
        data = disk()
        idx = LAYOUT.seq_block(75)
        put(data, idx, blocks.make_block(RUN, idx, 1))
        res = check(hist(), data, tolerate=every)
        self.assertEqual('DATA-LOSS', res.verdict)

    def test_gap_does_not_hide_data_loss(self):
        text = history.render(LAYOUT, RUN, WRITES).splitlines(True)
        del text[2 + 30]
        data = disk()
        idx = LAYOUT.seq_block(75)
        put(data, idx, blocks.make_block(RUN, idx, 1))
        res = check(history.parse(''.join(text)), data)
        self.assertEqual('DATA-LOSS', res.verdict)
        self.assertEqual([75], res.lost_seqs)
        self.assertIn('history: 1 problems', res.message)

    def test_two_captures_first_ending_mid_line(self):
        # Issue 9: the source's last capture ends inside ACK 60; the
        # destination's log starts inside ACK 63 (the guest went on
        # printing between the last poll and the switch-over).  Glued, the
        # two make one malformed line, and an intact disk was ERROR.
        text = history.render(LAYOUT, RUN, WRITES)
        source = text[:text.index('MTP ACK 60 ') + 12]
        destination = text[text.index('MTP ACK 63 ') + 20:]
        glued = check(history.parse([source, destination]), disk(),
                      tolerate=('gap',))
        self.assertEqual('ERROR', glued.verdict)
        self.assertIn('malformed',
                      [p.kind for p in glued.history_problems])
        # ConsoleStream keeps them apart: ACKs 60..63 are a gap, no record
        # is invented, and the intact disk is INTACT for a caller that
        # tolerates gaps (as the tempest tests do).
        stream = console.ConsoleStream()
        self.assertEqual([console.NEW, console.NEW],
                         [stream.add(source), stream.add(destination)])
        res = check(stream.texts(), disk(), tolerate=('gap',))
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertEqual(['gap'], [p.kind for p in res.history_problems])
        self.assertIn('seq 60..63 missing', res.history_problems[0].detail)
        self.assertEqual(WRITES, res.acked_writes)

    def test_second_run_is_checked(self):
        # Issue 17: a second run was an ERROR ('second-run'); its writes
        # are now expected too (test_integrity_epochs)
        text = (history.render(LAYOUT, RUN, 10) +
                history.render(LAYOUT, '0ddba11a', 3, noise=False))
        res = check(history.parse(text), disk(10))
        self.assertEqual('DATA-LOSS', res.verdict)
        self.assertEqual(3, res.stale_blocks)
        data = disk(10)
        for seq in range(3):
            idx = LAYOUT.seq_block(seq)
            put(data, idx, blocks.make_block('0ddba11a', idx, 1))
        res = check(history.parse(text), data)
        self.assertEqual('INTACT', res.verdict, res.message)
        # a run on another disk is still an ERROR
        other = blocks.make_layout(63, 64, '0ddba11a')
        text = (history.render(LAYOUT, RUN, 10) +
                history.render(other, '0ddba11a', 3, noise=False))
        res = check(history.parse(text), disk(10))
        self.assertEqual('ERROR', res.verdict)
        self.assertIn('other-disk', res.message)

    def test_no_run_is_error(self):
        res = check(history.parse('nothing here\n'), disk())
        self.assertEqual('ERROR', res.verdict)
        self.assertIn('no-run', res.message)

    def test_no_run_message_is_bounded(self):
        # Issue 9: without a RUN line every ACK was a problem and the
        # message held them all (1.1 MB for 20,000 ACKs).
        text = history.render(LAYOUT, RUN, 20000, noise=False)
        text = text[text.index('\n') + 1:]          # the RUN line is lost
        res = check(text, disk())
        self.assertEqual('ERROR', res.verdict)
        self.assertEqual(['no-run'], [p.kind for p in res.history_problems])
        self.assertIn('20000 ACKs before any RUN line', res.message)
        self.assertLess(len(res.message), 200)

    def test_many_fatal_problems_summarised(self):
        text = ''.join('MTP FATAL attempt %d\n' % i for i in range(50))
        res = check(text, disk())
        self.assertEqual('ERROR', res.verdict)
        self.assertEqual(51, len(res.history_problems))   # and no-run
        self.assertIn('attempt 2; and 48 more', res.message)
        self.assertLess(len(res.message), 300)

    def test_write_errors_reported(self):
        text = history.render(LAYOUT, RUN, WRITES) + (
            'MTP ERR 100 %d 2 rc=1\n' % LAYOUT.seq_block(100))
        res = check(history.parse(text), disk())
        self.assertEqual('INTACT', res.verdict)
        self.assertEqual(1, res.write_errors)
        self.assertIn('guest saw 1 write errors', res.message)


class TestBenchmark(testtools.TestCase):

    def test_synthetic_is_intact(self):
        text, image = bench.synthetic(1)
        res = checker.check(text, bytes(image))
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertEqual(256, res.checked_blocks)
        self.assertEqual(192, res.acked_writes)

    def test_benchmark_returns_rates(self):
        b = bench.benchmark(1, rounds=1)
        self.assertEqual((1, 192, 1), (b.mib, b.acks, b.rounds))
        for rate in (b.sha256_mbps, b.console_mbps, b.parsed_mbps,
                     b.console_ratio, b.parsed_ratio):
            self.assertGreater(rate, 0)
        self.assertEqual(set(json.loads(json.dumps(b.to_dict()))),
                         {f.name for f in dataclasses.fields(b)})

    def test_cli(self):
        self.assertEqual(0, bench.main(['1']))


ZLAYOUT = blocks.make_layout(63, 64, IMG, zero_every=3)


def zdisk(writes=WRITES, discard_keeps=False):
    """The image after *writes* ops of the zeroing layout; a discard that
    the disk ignored (*discard_keeps*) leaves the block as it was."""
    data = bytearray().join(blocks.iter_base_image(ZLAYOUT))
    for seq in range(writes):
        idx, op = ZLAYOUT.seq_block(seq), ZLAYOUT.op(seq)
        if op == blocks.WRITE:
            put(data, idx, blocks.make_block(RUN, idx, ZLAYOUT.seq_gen(seq)))
        elif op == blocks.ZERO or not discard_keeps:
            put(data, idx, blocks.ZERO_BLOCK)
    return data


def zhist(writes=WRITES, **kw):
    return history.parse(history.render(ZLAYOUT, RUN, writes, **kw))


class TestZeroing(testtools.TestCase):
    """Writes that empty their block: zeros after write-zeroes; zeros or
    the content before after a discard; never anything older."""

    def find(self, op, gen):
        """A block whose generation *gen* is an *op*, below WRITES."""
        for seq in range(WRITES):
            if ZLAYOUT.op(seq) == op and ZLAYOUT.seq_gen(seq) == gen:
                return seq, ZLAYOUT.seq_block(seq)
        self.fail('no %s of gen %d' % (op, gen))

    def test_ops_alternate(self):
        self.assertEqual(['write', 'write', 'zero', 'write', 'write',
                          'discard', 'write', 'write', 'zero'],
                         [ZLAYOUT.op(s) for s in range(9)])

    def test_intact_with_zeros_and_discards(self):
        res = check(zhist(), zdisk())
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertEqual(0, res.discard_kept_blocks)

    def test_discard_may_keep_the_data(self):
        res = check(zhist(), zdisk(discard_keeps=True))
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertGreater(res.discard_kept_blocks, 0)
        self.assertIn('discarded blocks kept their data', res.message)

    def test_old_data_back_after_write_zeroes_is_loss(self):
        seq, idx = self.find(blocks.ZERO, 2)
        data = zdisk()
        put(data, idx, blocks.make_block(RUN, idx, 1))
        res = check(zhist(), data)
        self.assertEqual('DATA-LOSS', res.verdict)
        self.assertEqual([(idx * BS, 'stale')], res.first_offsets)
        self.assertEqual([seq], res.lost_seqs)

    def test_data_older_than_the_discarded_is_loss(self):
        seq, idx = self.find(blocks.DISCARD, 2)
        self.assertEqual(blocks.WRITE, ZLAYOUT.op(seq - 64))
        data = zdisk()
        put(data, idx, blocks.make_block(IMG, idx, 0))  # gen 0, not gen 1
        res = check(zhist(), data)
        self.assertEqual('DATA-LOSS', res.verdict)
        self.assertEqual([(idx * BS, 'stale')], res.first_offsets)

    def test_zeros_where_a_later_write_was_acked_are_stale(self):
        # a block zeroed in gen 1 and rewritten in gen 2: its zeros back
        for seq in range(64, WRITES):
            idx = ZLAYOUT.seq_block(seq)
            if ZLAYOUT.op(seq) == blocks.WRITE and \
                    ZLAYOUT.op(seq - 64) != blocks.WRITE:
                break
        data = zdisk()
        put(data, idx, blocks.ZERO_BLOCK)
        res = check(zhist(), data)
        self.assertEqual('DATA-LOSS', res.verdict)
        self.assertEqual('stale', res.findings[0].kind)
        self.assertIn('zeros of seq %d' % (seq - 64), res.findings[0].detail)
        self.assertEqual([seq], res.lost_seqs)

    def test_zeroing_in_flight_may_have_landed(self):
        writes = next(s for s in range(WRITES, 2 * WRITES)
                      if ZLAYOUT.op(s) == blocks.ZERO)
        data = zdisk(writes + 1)     # the op after the last ACK landed
        res = check(zhist(writes), data)
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertEqual('new', res.inflight['state'])

    def test_label_and_run_line_carry_zero(self):
        label, intact = blocks.parse_label(blocks.label_block(ZLAYOUT))
        self.assertTrue(intact)
        self.assertEqual(ZLAYOUT, label)
        self.assertEqual(3, zhist().layout.zero_every)
        self.assertNotIn(b'zero=', blocks.label_line(LAYOUT))
        self.assertEqual(0, hist().layout.zero_every)

    def test_label_and_run_line_disagreeing_on_zero_is_error(self):
        res = check(hist(), zdisk())
        self.assertEqual('ERROR', res.verdict)
        self.assertIn('does not match the RUN line', res.message)
