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

"""Histories of several runs (boots), discarded runs and tagged agents.

Each scenario replays what a nova operation does to the disk: the runs'
writes in order, a revert that puts back the disk as it was at the
power-off, a rebuild that starts again from the image.
"""

import json

import testtools

from migration_tempest_plugin.integrity import blocks
from migration_tempest_plugin.integrity import checker
from migration_tempest_plugin.integrity import console as consolelib
from migration_tempest_plugin.integrity import history

IMG = 'a1b2c3d4'
LAYOUT = blocks.make_layout(63, 64, IMG)   # 128 blocks, work = 64..127
ZLAYOUT = blocks.make_layout(63, 64, IMG, zero_every=3)
BS = blocks.BLOCK_SIZE
A, B, C = '3a5f0c1d', 'b0b0cafe', 'c4d2e9f7'
ARTEFACTS = ('gap', 'order', 'malformed', 'bad-sum')


def pristine(layout=LAYOUT):
    return bytearray().join(blocks.iter_base_image(layout))


def put(data, idx, block):
    data[idx * BS:(idx + 1) * BS] = block


def get(data, idx):
    return bytes(data[idx * BS:(idx + 1) * BS])


def boot(data, run, writes, layout=LAYOUT, start=0):
    """Replay writes start..writes-1 of *run* on *data* (in place)."""
    for seq in range(start, writes):
        idx, op = layout.seq_block(seq), layout.op(seq)
        if op == blocks.WRITE:
            put(data, idx, blocks.make_block(run, idx, layout.seq_gen(seq)))
        else:
            put(data, idx, blocks.ZERO_BLOCK)
    return data


def console(run, writes, layout=LAYOUT, **kw):
    return history.render(layout, run, writes, **kw)


def check(h, data, **kw):
    res = checker.check(h, bytes(data), **kw)
    json.dumps(res.to_dict())                  # every result serialises
    return res


class TestParseRuns(testtools.TestCase):

    def test_each_run_line_starts_a_run(self):
        texts = [console(A, 100), console(B, 30), console(C, 5, done=True)]
        h = history.parse(texts)
        self.assertEqual([], h.problems)
        self.assertEqual([A, B, C], [r.run for r in h.runs])
        self.assertEqual([99, 29, 4], [r.last_seq for r in h.runs])
        self.assertEqual([False, False, True],
                         [r.done_seen for r in h.runs])
        self.assertEqual(list(range(30)), h.runs[1].acked_seqs)
        # each run is located where its RUN line is, in its console
        self.assertEqual([(0, 2), (1, 2), (2, 2)],
                         [r.location for r in h.runs])
        self.assertEqual([(0, 0), (1, 1), (2, 2)],
                         [r.sources for r in h.runs])
        last = h.runs[1].last_ack
        self.assertEqual((29, LAYOUT.seq_block(29), 1, 1, 32, B),
                         (last.seq, last.idx, last.gen, last.source,
                          last.line, last.run))
        # the one-run view: the last run, the writes of all runs
        self.assertEqual(C, h.run)
        self.assertEqual(LAYOUT, h.layout)
        self.assertEqual(4, h.last_seq)
        self.assertEqual(5, h.done)
        self.assertEqual(135, h.acked_writes)
        self.assertEqual(135, len(h.acks))
        self.assertEqual(A, h.acks[0].run)
        self.assertEqual((C, 4), (h.acks[-1].run, h.acks[-1].seq))
        d = json.loads(json.dumps(h.to_dict()))
        self.assertEqual([A, B, C], [r['run'] for r in d['runs']])
        self.assertEqual('console 1 line 2', d['runs'][1]['where'])

    def test_one_text_with_two_runs(self):
        # the lab's console file, appended to by each boot
        h = history.parse(console(A, 10) + console(B, 3))
        self.assertEqual([], h.problems)
        self.assertEqual([(0, 2), (0, 14)], [r.location for r in h.runs])

    def test_a_run_may_span_several_consoles(self):
        # a live migration splits a run over the source's console and the
        # destination's, even in the middle of a line
        text = console(A, 20)
        cut = text.index('MTP ACK 12 ') + 5
        h = history.parse([text[:cut], text[cut:], console(B, 4)])
        self.assertEqual([], h.problems)
        self.assertEqual([(0, 1), (2, 2)], [r.sources for r in h.runs])
        self.assertEqual([19, 3], [r.last_seq for r in h.runs])

    def test_a_boots_console_cut_by_the_power_off(self):
        # Each boot's console log is its own text, and a power-off may cut
        # its last line: that line is cut there, not glued to the next
        # boot's first line (which would make it malformed).
        text = console(A, 20)
        nxt = console(A, 21).splitlines(True)[-1]
        for cut, proven, counted in ((nxt[:9], 20, 19),
                                     (nxt.rstrip(), 20, 20)):
            h = history.parse([text + cut, console(B, 4)])
            self.assertEqual([], h.problems, cut)
            self.assertEqual([A, B], [r.run for r in h.runs])
            self.assertEqual((counted, proven),
                             (h.runs[0].last_seq, h.runs[0].proven_seq))
        # a RUN line right at the start of the next boot's text
        h = history.parse([text + nxt[:9], console(B, 4, noise=False)])
        self.assertEqual(([], [A, B]), (h.problems,
                                        [r.run for r in h.runs]))
        self.assertEqual(20, h.runs[0].proven_seq)
        # texts of one boot are still joined: a live migration may split
        # a line between the source's console and the destination's
        cut = text.index('MTP ACK 12 ') + 5
        h = history.parse([text[:cut], text[cut:] + console(B, 4)])
        self.assertEqual(([], 19), (h.problems, h.runs[0].last_seq))

    def test_seqs_restart_with_each_run(self):
        h = history.parse([console(A, 5), console(B, 5)])
        self.assertEqual([0, 1, 2, 3, 4] * 2, [a.seq for a in h.acks])
        self.assertEqual([], h.warnings)

    def test_run_on_another_disk_is_fatal(self):
        other = blocks.make_layout(63, 64, '99999999')
        h = history.parse([console(A, 5), console(B, 5, other)])
        # the other disk's boot is not this history's
        self.assertEqual(['other-disk'], [p.kind for p in h.problems])
        self.assertEqual([A], [r.run for r in h.runs])
        self.assertTrue(h.fatal_problems)
        self.assertIn('another disk', h.problems[0].detail)
        # a layout that differs in anything else is another disk too
        moved = blocks.make_layout(63, 64, IMG, step=7)
        h = history.parse([console(A, 5), console(B, 5, moved)])
        self.assertEqual('other-disk', h.problems[0].kind)

    def test_run_line_of_an_earlier_run_again_is_fatal(self):
        h = history.parse([console(A, 5), console(B, 5), console(A, 5)])
        self.assertIn('run-again', [p.kind for p in h.problems])
        self.assertTrue(h.fatal_problems)

    def test_repeated_run_line_of_the_current_run_is_a_duplicate(self):
        text = console(A, 3)
        h = history.parse([text, text.splitlines(True)[1]])
        self.assertEqual([], h.problems)
        self.assertEqual(['duplicate'], [w.kind for w in h.warnings])
        self.assertEqual(1, len(h.runs))

    def test_acks_of_a_run_without_its_run_line_are_fatal(self):
        # the second boot's RUN line is lost (a tail capture that missed
        # it): its ACKs fit run B's id, not A's
        second = console(B, 5, noise=False).split('\n', 1)[1]
        h = history.parse([console(A, 20), second])
        self.assertIn('unknown-run', [p.kind for p in h.problems])
        self.assertIn('run %s' % B, str(h.fatal_problems[0]))
        # one bad sum alone is only a bad sum
        lines = console(A, 20).splitlines(True)
        lines[10] = lines[10][:-3] + ('0' if lines[10][-3] != '0'
                                      else '1') + '\r\n'
        h = history.parse(''.join(lines))
        self.assertEqual(['bad-sum', 'gap'], [p.kind for p in h.problems])

    def test_write_errors_name_their_run(self):
        err = 'MTP ERR 2 %d 1 rc=5\n' % LAYOUT.seq_block(2)
        h = history.parse([console(A, 2) + err, console(B, 2)])
        self.assertEqual([(A, 2, 5)], [(e.run, e.seq, e.rc)
                                       for e in h.write_errors])


class TestCheckRuns(testtools.TestCase):
    """Hard reboot, cold migration confirmed, evacuate on shared storage,
    shelve and unshelve: every acknowledged write of every run is kept."""

    def test_two_runs_intact(self):
        data = boot(boot(pristine(), A, 100), B, 30)
        res = check(history.parse([console(A, 100), console(B, 30)]), data)
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertEqual(130, res.acked_writes)
        self.assertEqual([A, B], [r['run'] for r in res.runs])
        self.assertEqual([], res.discarded_runs)
        self.assertEqual(B, res.run)
        # the last run's write in flight, as for one run
        self.assertEqual({'seq': 30, 'block': LAYOUT.seq_block(30),
                          'gen': 1, 'state': 'old'}, res.inflight)
        # A's write in flight at its power-off: block 36 of the cycle,
        # which B did not reach
        self.assertEqual(100, res.runs[0]['inflight']['seq'])
        self.assertEqual('old', res.runs[0]['inflight']['state'])
        self.assertIn('runs %s, %s' % (A, B), res.message)

    def test_three_runs_over_several_generations(self):
        data = boot(boot(boot(pristine(), A, 150), B, 70), C, 10)
        h = history.parse([console(A, 150), console(B, 70), console(C, 10)])
        res = check(h, data)
        self.assertEqual('INTACT', res.verdict, res.message)

    def test_lost_write_of_the_first_run_found_after_a_second_boot(self):
        data = boot(boot(pristine(), A, 100), B, 30)
        # A's seq 95 (second generation of its block; B wrote only the
        # first 30 blocks of the cycle) and seq 50 (first generation)
        lost = {95: blocks.make_block(A, LAYOUT.seq_block(95), 1),
                50: blocks.make_block(IMG, LAYOUT.seq_block(50), 0)}
        for seq, old in lost.items():
            put(data, LAYOUT.seq_block(seq), old)
        # and a write of A that B overwrote is not A's to lose
        res = check(history.parse([console(A, 100), console(B, 30)]), data)
        self.assertEqual('DATA-LOSS', res.verdict, res.message)
        self.assertEqual(2, res.stale_blocks)
        self.assertEqual([(A, 50), (A, 95)], res.lost)
        details = sorted(f.detail for f in res.findings)
        self.assertIn('run %s gen 1, last acknowledged run %s gen 2 '
                      '(seq 95)' % (A, A), details)
        self.assertIn('image gen 0, last acknowledged run %s gen 1 '
                      '(seq 50)' % A, details)

    def test_lost_write_of_the_later_run(self):
        data = boot(boot(pristine(), A, 100), B, 30)
        idx = LAYOUT.seq_block(10)
        put(data, idx, blocks.make_block(A, idx, 2))     # A's, not B's
        res = check(history.parse([console(A, 100), console(B, 30)]), data)
        self.assertEqual('DATA-LOSS', res.verdict, res.message)
        self.assertEqual([(B, 10)], res.lost)
        self.assertEqual('stale', res.findings[0].kind)

    def test_in_flight_write_at_the_end_of_a_run(self):
        # A powered off while write 100 was in flight: it may be on the
        # disk, in part or not at all
        idx = LAYOUT.seq_block(100)
        new = blocks.make_block(A, idx, 2)
        old = blocks.make_block(A, idx, 1)
        h = history.parse([console(A, 100), console(B, 30)])
        for content, state in ((new, 'new'), (old, 'old'),
                               (new[:1024] + old[1024:], 'mixed')):
            data = boot(boot(pristine(), A, 100), B, 30)
            put(data, idx, content)
            res = check(h, data)
            self.assertEqual('INTACT', res.verdict, res.message)
            self.assertEqual(state, res.runs[0]['inflight']['state'])
        # torn inside a sector: A's acknowledged gen 1 is lost
        data = boot(boot(pristine(), A, 100), B, 30)
        put(data, idx, new[:988] + old[988:])   # inside the gen field
        res = check(h, data)
        self.assertEqual('DATA-LOSS', res.verdict, res.message)
        self.assertEqual('damaged', res.runs[0]['inflight']['state'])
        self.assertEqual([(A, 36)], res.lost)

    def test_in_flight_write_covered_by_a_later_run(self):
        # B acknowledged a write to the block of A's write in flight: B's
        # write must be there, A's may not come back
        h = history.parse([console(A, 100), console(B, 40)])
        data = boot(boot(pristine(), A, 100), B, 40)
        self.assertEqual('INTACT', check(h, data).verdict)
        self.assertEqual('covered', check(h, data).runs[0]['inflight'][
            'state'])
        idx = LAYOUT.seq_block(100)
        put(data, idx, blocks.make_block(A, idx, 2))
        res = check(h, data)
        self.assertEqual('DATA-LOSS', res.verdict, res.message)
        self.assertEqual([(B, 36)], res.lost)

    def test_both_runs_in_flight_on_one_block(self):
        # A and B each stopped with 36 writes: both in flight on block 36
        h = history.parse([console(A, 36), console(B, 36)])
        idx = LAYOUT.seq_block(36)
        a_new = blocks.make_block(A, idx, 1)
        b_new = blocks.make_block(B, idx, 1)
        image = blocks.make_block(IMG, idx, 0)
        for content in (a_new, b_new, image,
                        a_new[:512] + b_new[512:1024] + image[1024:]):
            data = boot(boot(pristine(), A, 36), B, 36)
            put(data, idx, content)
            res = check(h, data)
            self.assertEqual('INTACT', res.verdict, res.message)

    def test_only_the_write_after_the_last_ack_is_in_flight(self):
        # writes of A after its last ACK + 1 that no later run covers: the
        # history of A is incomplete (its console was not read to the end)
        data = boot(boot(pristine(), A, 110), B, 30)
        res = check(history.parse([console(A, 100), console(B, 30)]), data)
        self.assertEqual('ERROR', res.verdict, res.message)
        self.assertEqual(9, res.ahead_blocks)
        self.assertIn('history incomplete', res.message)

    def test_done_then_another_boot(self):
        data = boot(boot(pristine(), A, 80), B, 10)
        h = history.parse([console(A, 80, done=True), console(B, 10)])
        res = check(h, data)
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertIsNone(res.runs[0]['inflight'])

    def test_runs_with_zeroes_and_discards(self):
        data = boot(boot(pristine(ZLAYOUT), A, 100, ZLAYOUT), B, 50, ZLAYOUT)
        h = history.parse([console(A, 100, ZLAYOUT),
                           console(B, 50, ZLAYOUT)])
        self.assertEqual('INTACT', check(h, data).verdict)
        # B discarded a block that A had written: A's content may stay
        seq = next(s for s in range(50) if ZLAYOUT.op(s) == blocks.DISCARD)
        idx = ZLAYOUT.seq_block(seq)
        put(data, idx, get(boot(pristine(ZLAYOUT), A, 100, ZLAYOUT), idx))
        res = check(h, data)
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertEqual(1, res.discard_kept_blocks)
        # but not the image's content, older than A's write
        put(data, idx, blocks.make_block(IMG, idx, 0))
        self.assertEqual('DATA-LOSS', check(h, data).verdict)

    def test_the_disk_of_another_image(self):
        other = blocks.make_layout(63, 64, '99999999')
        res = check(history.parse([console(A, 5), console(B, 5, other)]),
                    pristine())
        self.assertEqual('ERROR', res.verdict)
        self.assertIn('other-disk', res.message)


class TestDiscardedRuns(testtools.TestCase):
    """Revert and rebuild: the runs whose writes the operation undid."""

    def revert(self):
        """A writes 100 and is powered off; the disk is copied; B boots on
        the destination and writes 40; the revert puts back A's disk;
        C boots on the source and writes 20."""
        at_power_off = boot(pristine(), A, 100)
        destination = boot(bytearray(at_power_off), B, 40)
        reverted = boot(bytearray(at_power_off), C, 20)
        h = history.parse([console(A, 100), console(B, 40), console(C, 20)])
        return h, reverted, boot(bytearray(destination), C, 20)

    def test_revert_intact(self):
        h, reverted, _ = self.revert()
        res = check(h, reverted, discarded_runs=[B])
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertEqual([B], res.discarded_runs)
        self.assertEqual([False, True, False],
                         [r['discarded'] for r in res.runs])
        self.assertEqual(120, res.acked_writes)
        self.assertIn('%s (discarded)' % B, res.message)
        # A's write in flight at the power-off is still open: C did not
        # reach its block
        self.assertEqual('old', res.runs[0]['inflight']['state'])

    def test_revert_that_kept_the_destinations_writes(self):
        h, _, kept = self.revert()
        res = check(h, kept, discarded_runs=[B])
        self.assertEqual('DATA-LOSS', res.verdict, res.message)
        # B's writes to blocks 20..39 of the cycle, which C did not
        # rewrite, are still there
        self.assertEqual(20, res.undone_blocks)
        self.assertEqual(20, res.lost_writes)
        # A's writes there: gen 2 of cycle blocks 20..35 (seqs 84..99),
        # gen 1 of 36..39
        self.assertEqual([(A, s) for s in range(36, 40)] +
                         [(A, s) for s in range(84, 100)], res.lost)
        f = res.findings[0]
        self.assertEqual('undone', f.kind)
        self.assertIn('of a discarded run', f.detail)
        self.assertIn('undone 20', res.message)

    def test_writes_of_a_discarded_run_where_only_the_image_was(self):
        h = history.parse([console(A, 30), console(B, 40), console(C, 10)])
        reverted = boot(boot(pristine(), A, 30), C, 10)
        self.assertEqual('INTACT', check(h, reverted,
                                         discarded_runs=[B]).verdict)
        idx = LAYOUT.seq_block(35)            # A never reached it
        put(reverted, idx, blocks.make_block(B, idx, 1))
        res = check(h, reverted, discarded_runs=[B])
        self.assertEqual('DATA-LOSS', res.verdict, res.message)
        self.assertEqual(1, res.undone_blocks)
        self.assertEqual(0, res.lost_writes)   # no acknowledged write

    def test_revert_without_naming_the_discarded_run(self):
        # a test that forgets the revert expects B's writes: stale
        h, reverted, _ = self.revert()
        res = check(h, reverted)
        self.assertEqual('DATA-LOSS', res.verdict, res.message)
        self.assertEqual(20, res.stale_blocks)

    def test_unknown_discarded_run_is_error(self):
        h, reverted, _ = self.revert()
        res = check(h, reverted, discarded_runs=[B, 'deadbeef'])
        self.assertEqual('ERROR', res.verdict)
        self.assertIn('deadbeef', res.message)
        self.assertIn('does not have', res.message)
        res = check(None, pristine(), discarded_runs=[A])
        self.assertEqual('ERROR', res.verdict)
        # one id given as a str is a programming error
        self.assertRaises(TypeError, checker.check, h, bytes(reverted),
                          discarded_runs=B)

    def test_rebuild_from_the_image(self):
        # evacuate on local storage: the disk is the image again, then the
        # guest boots and writes
        h = history.parse([console(A, 100), console(B, 30)])
        rebuilt = boot(pristine(), B, 30)
        res = check(h, rebuilt, discarded_runs=[A])
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertEqual(30, res.acked_writes)
        # the old disk kept instead of the image
        kept = boot(boot(pristine(), A, 100), B, 30)
        res = check(h, kept, discarded_runs=[A])
        self.assertEqual('DATA-LOSS', res.verdict, res.message)
        self.assertEqual(34, res.undone_blocks)
        self.assertEqual(0, res.lost_writes)
        # with every run discarded the disk must be the image
        res = check(h, pristine(), discarded_runs=[A, B])
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertIsNone(res.inflight)

    def test_evacuate_on_shared_storage_keeps_every_write(self):
        h = history.parse([console(A, 100), console(B, 30)])
        data = boot(boot(pristine(), A, 100), B, 30)
        self.assertEqual('INTACT', check(h, data).verdict)
        # discarding A would be wrong here, and shows
        res = check(h, data, discarded_runs=[A])
        self.assertEqual('DATA-LOSS', res.verdict)


class TestTags(testtools.TestCase):
    """A second agent on a second disk prints MTP.<tag> records."""

    def both(self):
        """One console with both agents' records interleaved."""
        first = console(A, 30).splitlines(True)
        second = console(B, 20, tag='vdb', noise=False).splitlines(True)
        out = []
        for i in range(max(len(first), len(second))):
            out.extend(first[i:i + 1] + second[i:i + 1])
        return ''.join(out)

    def test_each_agent_reads_its_own_records(self):
        text = self.both()
        plain = history.parse(text)
        self.assertEqual(([], [], [A]), (plain.problems, plain.warnings,
                                         [r.run for r in plain.runs]))
        self.assertEqual(29, plain.last_seq)
        vdb = history.parse(text, tag='vdb')
        self.assertEqual(([], [], [B]), (vdb.problems, vdb.warnings,
                                         [r.run for r in vdb.runs]))
        self.assertEqual((19, 'vdb'), (vdb.last_seq, vdb.tag))
        self.assertEqual('vdb', vdb.to_dict()['tag'])
        self.assertEqual(30, history.ack_count(text))
        self.assertEqual(20, history.ack_count(text, 'vdb'))

    def test_untagged_parsing_ignores_damaged_tagged_lines(self):
        text = self.both() + 'MTP.vdb ACK 20 garbage\nMTP.vdb FATAL x\n'
        self.assertEqual([], history.parse(text).problems)
        self.assertIsNone(history.fatal_line(text))
        self.assertEqual('MTP.vdb FATAL x', history.fatal_line(text, 'vdb'))
        vdb = history.parse(text, tag='vdb')
        self.assertEqual(['malformed', 'fatal'],
                         [p.kind for p in vdb.problems])
        # and a tagged history sees no untagged line
        self.assertEqual([], history.parse(console(A, 3),
                                           tag='vdb').runs)

    def test_tag_must_be_lowercase_alphanumeric(self):
        for tag in ('', 'VDB', 'v.b', 'v b', 3):
            self.assertRaises(ValueError, history.parse, '', tag=tag)

    def test_tagged_history_checks_the_second_disk(self):
        second = blocks.make_layout(31, 32, 'b2b2b2b2')
        text = self.both().replace(console(B, 0, tag='vdb', noise=False),
                                   console(B, 0, second, tag='vdb',
                                           noise=False))
        text = ''.join(
            line for line in text.splitlines(True)
            if not line.startswith('MTP.vdb ACK')) + console(
                B, 50, second, tag='vdb', noise=False).split('\n', 1)[1]
        vdb = history.parse(text, tag='vdb')
        self.assertEqual(([], second), (vdb.problems, vdb.layout))
        disk = boot(pristine(second), B, 50, second)
        self.assertEqual('INTACT', check(vdb, disk).verdict)
        idx = second.seq_block(40)
        put(disk, idx, blocks.make_block('b2b2b2b2', idx, 0))
        res = check(vdb, disk)
        self.assertEqual('DATA-LOSS', res.verdict)
        self.assertEqual([(B, 40)], res.lost)

    def test_console_stream_drops_a_malformed_tagged_first_line(self):
        # a segment that starts inside a line: the rest of a tagged record
        # that does not parse is dropped, as an untagged one is
        stream = console_stream(['MTP.vdb ACK 7 9\nMTP NOTE x\n'])
        self.assertEqual(['MTP NOTE x\n'], stream.texts())
        stream = console_stream(['MTP.vdb NOTE fine\nMTP NOTE x\n'])
        self.assertEqual(['MTP.vdb NOTE fine\nMTP NOTE x\n'],
                         stream.texts())


def console_stream(captures):
    stream = consolelib.ConsoleStream()
    for c in captures:
        stream.add(c)
    return stream
