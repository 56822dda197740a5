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

import testtools

from migration_tempest_plugin.integrity import blocks
from migration_tempest_plugin.integrity import history

RUN = '7e57c0de'
LAYOUT = blocks.make_layout(63, 64, 'a1b2c3d4')


def console(count, **kw):
    return history.render(LAYOUT, RUN, count, **kw)


def kinds(problems):
    return [p.kind for p in problems]


class TestQuickScan(testtools.TestCase):

    def test_ack_count_and_fatal(self):
        text = console(25)
        self.assertEqual(25, history.ack_count(text))
        self.assertIsNone(history.fatal_line(text))
        text += 'noise MTP FATAL no disk /dev/vdb\r\nMTP NOTE bye\n'
        self.assertEqual('MTP FATAL no disk /dev/vdb',
                         history.fatal_line(text).strip())


class TestParse(testtools.TestCase):

    def test_clean(self):
        h = history.parse(console(100, done=True))
        self.assertEqual(RUN, h.run)
        self.assertEqual(LAYOUT, h.layout)
        self.assertEqual(list(range(100)), [a.seq for a in h.acks])
        self.assertEqual(99, h.last_seq)
        self.assertEqual(100, h.acked_writes)
        self.assertEqual(100, h.done)
        self.assertTrue(h.ok)
        self.assertEqual([], h.warnings)
        a = h.acks[65]
        self.assertEqual((LAYOUT.seq_block(65), 2), (a.idx, a.gen))
        # line 1 is kernel noise, line 2 the RUN line
        self.assertEqual((0, 68), (a.source, a.line))

    def test_empty_history(self):
        h = history.parse(console(0))
        self.assertEqual(-1, h.last_seq)
        self.assertTrue(h.ok)

    def test_bytes_and_noise_before_record(self):
        text = console(3).replace('MTP ACK 1 ',
                                  '[    4.2] random: crng init MTP ACK 1 ')
        h = history.parse(text.encode())
        self.assertEqual([0, 1, 2], [a.seq for a in h.acks])
        self.assertTrue(h.ok)

    def test_split_over_two_consoles_mid_line(self):
        text = console(10)
        cut = text.index('MTP ACK 6 ') + 9
        h = history.parse([text[:cut], text[cut:]])
        self.assertEqual(list(range(10)), [a.seq for a in h.acks])
        self.assertTrue(h.ok)
        # the straddling line is located where it starts
        self.assertEqual((0, 9), (h.acks[6].source, h.acks[6].line))
        self.assertEqual((1, 2), (h.acks[7].source, h.acks[7].line))

    def test_ack_cut_by_a_console_switch_is_counted(self):
        # A live migration switched consoles while the guest printed the
        # ACK of seq 6: the source's console ends in its start, the
        # destination's begins after its lost end (seen on the lab cloud).
        text = console(10)
        start = text.index('MTP ACK 6 ')
        line_end = text.index('\r\n', start)
        for head in ('MTP ACK 6 ', text[start:line_end - 3]):
            cut = start + len(head)
            h = history.parse([text[:cut], text[line_end:]])
            self.assertEqual(list(range(10)), [a.seq for a in h.acks])
            self.assertTrue(h.ok, h.problems)
            self.assertEqual(['cut-at-switch'], kinds(h.warnings))
            self.assertEqual((0, 9), (h.warnings[0].source,
                                      h.warnings[0].line))
        # The end arrived after all: the line is the whole record again.
        h = history.parse([text[:start + 12], text[start + 12:]])
        self.assertEqual([], h.warnings)

    def test_ack_cut_by_a_console_switch_then_a_later_ack(self):
        # The source's log went with its folder before its last lines were
        # read: it ends inside ACK 6, the destination's begins with ACK 8
        # (seen in CI on local storage).  ACK 6 counts, ACK 7 is a gap (the
        # tempest tests tolerate gaps: every seq up to the last was
        # durable), and no line is malformed.
        text = console(10)
        start = text.index('MTP ACK 6 ')
        h = history.parse([text[:start + 12],
                           text[text.index('MTP ACK 8 '):]])
        self.assertEqual(['gap'], kinds(h.problems))
        self.assertIn('seq 7..7 missing', h.problems[0].detail)
        self.assertEqual(['cut-at-switch'], kinds(h.warnings))
        self.assertEqual(10, h.acked_writes)
        self.assertEqual([0, 1, 2, 3, 4, 5, 6, 8, 9],
                         [a.seq for a in h.acks])

    def test_ack_cut_by_a_console_switch_must_be_the_next_ones(self):
        # Not the start of the next write's ACK (another block), or a line
        # cut inside one console: judged as before.
        text = console(10)
        start = text.index('MTP ACK 6 ')
        line_end = text.index('\r\n', start)
        h = history.parse([text[:start] + 'MTP ACK 6 9 ', text[line_end:]])
        self.assertEqual(['malformed', 'gap'], kinds(h.problems))
        h = history.parse(text[:start] + 'MTP ACK 6 ' + text[line_end:])
        self.assertEqual(['malformed', 'gap'], kinds(h.problems))

    def test_locations_over_empty_sources_and_noise_split(self):
        # A line is located where it starts, even when its tag is in the
        # next source; empty sources hold no line.
        text = console(10).replace('MTP ACK 4 ', '[  2.5] MTP ACK 4 ')
        cut = text.index('MTP ACK 4 ')             # noise | tag
        h = history.parse(['', text[:cut], '', text[cut:], ''])
        self.assertTrue(h.ok, h.problems)
        self.assertEqual((1, 7), (h.acks[4].source, h.acks[4].line))
        self.assertEqual((3, 2), (h.acks[5].source, h.acks[5].line))
        self.assertEqual((1, 2), h.run_location)
        # problems are located the same way
        lines = console(10).splitlines(True)
        lines[8] = lines[8][:12] + '\n'           # seq 6 cut short
        h = history.parse(['', ''.join(lines[:5]), ''.join(lines[5:])])
        self.assertEqual(['malformed', 'gap'], kinds(h.problems))
        self.assertEqual([(2, 4), (2, 5)],
                         [(p.source, p.line) for p in h.problems])

    def test_acks_in_other_spellings_take_the_full_path(self):
        # The common case is compared with the record as the workload
        # prints it; any other spelling that parses is judged in full,
        # as before: leading zeros pass, a wrong sum does not.
        lines = console(5).splitlines(True)
        idx = LAYOUT.seq_block(3)
        lines[5] = 'MTP ACK 003 %d 01 %08x  \r\n' % (
            idx, blocks.record_sum(RUN, idx, 1))
        h = history.parse(''.join(lines))
        self.assertTrue(h.ok, h.problems)
        self.assertEqual([0, 1, 2, 3, 4], [a.seq for a in h.acks])
        self.assertEqual([6, 7], [a.line for a in h.acks[3:]])
        lines[5] = lines[5].replace(' 01 ', ' 02 ')
        h = history.parse(''.join(lines))
        self.assertEqual(['bad-sum', 'gap'], kinds(h.problems))
        self.assertEqual([0, 1, 2, 4], [a.seq for a in h.acks])

    def test_concatenated_consoles_with_identical_overlap(self):
        text = console(10)
        lines = text.splitlines(True)
        h = history.parse([''.join(lines[:8]), ''.join(lines[5:])])
        self.assertEqual(list(range(10)), [a.seq for a in h.acks])
        self.assertTrue(h.ok, h.problems)
        self.assertEqual(['duplicate'] * 3, kinds(h.warnings))

    def test_gap_located(self):
        lines = console(20).splitlines(True)
        del lines[2 + 7:2 + 9]          # acks for seq 7 and 8
        h = history.parse(''.join(lines))
        self.assertEqual(['gap'], kinds(h.problems))
        p = h.problems[0]
        self.assertEqual(10, p.line)    # the ack of seq 9 is now line 10
        self.assertIn('seq 7..8 missing', p.detail)
        self.assertIn('MTP ACK 9 ', p.text)
        self.assertEqual(19, h.last_seq)

    def test_first_ack_missing_is_a_gap(self):
        lines = console(5).splitlines(True)
        del lines[2]
        h = history.parse(''.join(lines))
        self.assertEqual(['gap'], kinds(h.problems))
        self.assertIn('seq 0..0 missing', h.problems[0].detail)

    def test_malformed_record_located(self):
        lines = console(10).splitlines(True)
        lines[6] = lines[6][:14] + '\r\n'   # truncated mid-record
        h = history.parse(''.join(lines))
        self.assertEqual(['malformed', 'gap'], kinds(h.problems))
        self.assertEqual(7, h.problems[0].line)
        self.assertEqual(8, h.problems[1].line)

    def test_bad_sum(self):
        lines = console(10).splitlines(True)
        lines[5] = lines[5].replace('MTP ACK 3 ', 'MTP ACK 5 ')
        h = history.parse(''.join(lines))
        self.assertEqual('bad-sum', h.problems[0].kind)
        self.assertEqual(6, h.problems[0].line)

    def test_garbled_sum(self):
        lines = console(10).splitlines(True)
        s = lines[5]
        lines[5] = s[:-4] + ('0' if s[-4] != '0' else '1') + s[-3:]
        h = history.parse(''.join(lines))
        self.assertEqual(['bad-sum', 'gap'], kinds(h.problems))

    def test_same_seq_other_content_is_bad_sum(self):
        # Issue 9: there is no "conflict" kind.  An ACK is determined by
        # its seq, so a second ACK of seq 2 with any other idx, gen or sum
        # is not that of seq 2: bad-sum; the same content is a duplicate.
        text = console(5)
        idx = LAYOUT.seq_block(2)
        others = [(idx, 1, 0), (idx + 1, 1, None), (idx, 2, None)]
        for i, gen, ssum in others:
            if ssum is None:
                ssum = blocks.record_sum(RUN, i, gen)
            ack = 'MTP ACK 2 %d %d %08x\n' % (i, gen, ssum)
            h = history.parse(text + ack)
            self.assertEqual(['bad-sum'], kinds(h.problems))
            self.assertEqual(4, h.last_seq)
        h = history.parse(text + text.splitlines(True)[4])
        self.assertTrue(h.ok)
        self.assertEqual(['duplicate'], kinds(h.warnings))

    def test_order(self):
        lines = console(6).splitlines(True)
        lines[4], lines[6] = lines[6], lines[4]   # seq 0 1 4 3 2 5
        h = history.parse(''.join(lines))
        self.assertEqual(['gap', 'order', 'order'], kinds(h.problems))
        self.assertEqual([5, 6, 7], [p.line for p in h.problems])
        self.assertEqual(5, h.last_seq)

    def test_partial_tail_is_only_a_warning(self):
        text = console(10) + 'MTP ACK 10 %d' % LAYOUT.seq_block(10)
        h = history.parse(text)
        self.assertTrue(h.ok)
        self.assertEqual(['partial-tail'], kinds(h.warnings))
        self.assertEqual(13, h.warnings[0].line)
        self.assertEqual(9, h.last_seq)
        # but it is the start of ACK 10: write 10 is proven (issue 18)
        self.assertEqual((10, 10), (h.runs[0].proven_seq,
                                    h.runs[0].claimed_seq))
        self.assertEqual(['partial-tail'],
                         [e.kind for e in h.runs[0].evidence])

    def test_console_ending_inside_done(self):
        # Issue 9: "MTP DONE 1", the cut end of "MTP DONE 10", was read
        # as DONE 1 and made a gap.
        for cut in ('MTP DONE', 'MTP DONE ', 'MTP DONE 1'):
            h = history.parse(console(10) + cut)
            self.assertTrue(h.ok, (cut, h.problems))
            self.assertEqual(['partial-tail'], kinds(h.warnings))
            self.assertIsNone(h.done)
        # a whole DONE line still counts
        h = history.parse(console(10) + 'MTP DONE 10\r\n')
        self.assertEqual((True, 10), (h.ok, h.done))

    def test_partial_record_inside_text_is_a_problem(self):
        text = console(10) + 'MTP ACK 10 %d\n' % LAYOUT.seq_block(10)
        h = history.parse(text)
        self.assertEqual(['malformed'], kinds(h.problems))

    def test_no_run(self):
        lines = console(3).splitlines(True)
        del lines[1]
        h = history.parse(''.join(lines))
        # one problem for all the ACKs before a RUN line, at the first
        self.assertEqual(['no-run'], kinds(h.problems))
        self.assertTrue(h.problems[0].fatal)
        self.assertEqual(2, h.problems[0].line)
        self.assertEqual('3 ACKs before any RUN line', h.problems[0].detail)
        h = history.parse('just a kernel log\n')
        self.assertEqual(['no-run'], kinds(h.problems))

    def test_second_run(self):
        # Issue 17: a second RUN line was fatal ('second-run'); it is a
        # reboot, and starts a second run (test_integrity_epochs)
        other = history.render(LAYOUT, 'ffff0000', 2, noise=False)
        h = history.parse(console(5) + other)
        self.assertTrue(h.ok, h.problems)
        self.assertEqual([RUN, 'ffff0000'], [r.run for r in h.runs])
        self.assertEqual((0, 8), h.runs[1].location)
        self.assertEqual((4, 1), (h.runs[0].last_seq, h.last_seq))
        self.assertEqual(7, h.acked_writes)
        # on another disk it is fatal
        other = history.render(blocks.make_layout(63, 64, 'ffffffff'),
                               'ffff0000', 2, noise=False)
        h = history.parse(console(5) + other)
        self.assertEqual(['other-disk'], kinds(h.problems))
        self.assertEqual(8, h.problems[0].line)
        self.assertTrue(h.fatal_problems)

    def test_repeated_identical_run_line(self):
        text = console(2)
        run_line = text.splitlines(True)[1]
        h = history.parse(text + run_line)
        self.assertTrue(h.ok)
        self.assertEqual(['duplicate'], kinds(h.warnings))

    def test_bad_run_layout(self):
        text = console(0).replace('work=64+64', 'work=64+0')
        h = history.parse(text)
        self.assertEqual(['bad-run', 'no-run'], kinds(h.problems))

    def test_fatal(self):
        h = history.parse('MTP FATAL /dev/vda is not a block device\n')
        self.assertEqual(['fatal', 'no-run'], kinds(h.problems))
        self.assertIn('not a block device', h.problems[0].detail)

    def test_done_count_mismatch(self):
        h = history.parse(console(5) + 'MTP DONE 7\n')
        self.assertEqual(['gap'], kinds(h.problems))

    def test_write_errors_and_notes(self):
        text = console(3) + 'MTP NOTE direct=1\nMTP ERR 3 %d 1 rc=1\n' % (
            LAYOUT.seq_block(3))
        h = history.parse(text)
        self.assertTrue(h.ok)
        self.assertEqual(['direct=1'], h.notes)
        self.assertEqual(1, len(h.write_errors))
        self.assertEqual((3, 1), (h.write_errors[0].seq,
                                  h.write_errors[0].rc))

    def test_to_dict(self):
        lines = console(5).splitlines(True)
        del lines[3]
        d = history.parse(''.join(lines)).to_dict()
        self.assertEqual(RUN, d['run'])
        self.assertEqual(4, d['last_seq'])
        self.assertEqual('gap', d['problems'][0]['kind'])
        self.assertEqual('console 0 line 4', d['problems'][0]['where'])
        self.assertEqual([RUN], [r['run'] for r in d['runs']])
        self.assertEqual('console 0 line 2', d['runs'][0]['where'])
        self.assertIsNone(d['tag'])

    def test_one_run_reads_as_before(self):
        # what the lab and the tempest tests read of a history of one run
        h = history.parse(console(20))
        self.assertEqual(1, len(h.runs))
        r = h.runs[0]
        self.assertEqual((RUN, LAYOUT, (0, 2)), (r.run, r.layout, r.location))
        self.assertEqual((r.run, r.layout, r.location, r.last_seq),
                         (h.run, h.layout, h.run_location, h.last_seq))
        self.assertEqual(20, h.acked_writes)
        self.assertEqual([a.seq for a in h.acks], r.acked_seqs)
        self.assertEqual((19, 22, RUN), (r.last_ack.seq, r.last_ack.line,
                                         r.last_ack.run))
        self.assertEqual((19, 19, []), (r.proven_seq, r.claimed_seq,
                                        r.evidence))
        self.assertFalse(r.done_seen)
        self.assertEqual([], h.warnings)
