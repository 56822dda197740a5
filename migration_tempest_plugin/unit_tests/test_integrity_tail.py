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

"""The oracle's blind tail (issue 18, item 7).

An audit found that the newest acknowledged writes could be lost with a
verdict of INTACT when damage hit the last ACK lines of the console: with M
the highest counted ACK, the verdict was INTACT exactly when every lost
write was after M and every write from M+2 on was lost.  Here the last one
or two ACK lines of a console are damaged in every way the audit used, the
newest K writes are lost (K = 0..3), and the history is judged with and
without the tempest tests' tolerated problem kinds: the verdict is never
INTACT when a write that the guest acknowledged is missing, and INTACT
when nothing is lost.
"""

import itertools

import testtools

from migration_tempest_plugin.integrity import blocks
from migration_tempest_plugin.integrity import checker
from migration_tempest_plugin.integrity import history

IMG = 'a1b2c3d4'
RUN = '7e57c0de'
OTHER = '0000000b'
LAYOUT = blocks.make_layout(63, 64, IMG)
BS = blocks.BLOCK_SIZE
N = 100                  # writes the guest acknowledged: ACK 0..99
# tests/base.py CONSOLE_ARTEFACTS
ARTEFACTS = ('gap', 'order', 'malformed', 'bad-sum')
EXTRA = 30               # writes of the next boot, in the two-run matrix


def disk(writes, run=RUN, data=None):
    if data is None:
        data = bytearray().join(blocks.iter_base_image(LAYOUT))
    for seq in range(writes):
        idx = LAYOUT.seq_block(seq)
        data[idx * BS:(idx + 1) * BS] = blocks.make_block(
            run, idx, LAYOUT.seq_gen(seq))
    return data


def flip(line, field):
    """*line* with the last digit of ACK field *field* (1 = seq, 2 = idx,
    3 = gen, 4 = sum) changed."""
    parts = line.rstrip('\r\n').split(' ')
    value = parts[field + 1]
    digits = '0123456789abcdef' if field == 4 else '0123456789'
    parts[field + 1] = value[:-1] + digits[
        (digits.index(value[-1]) + 1) % len(digits)]
    return ' '.join(parts) + '\r\n'


def earlier(line):
    return LINES[2 + 5]                          # the ACK of seq 5


LINES = history.render(LAYOUT, RUN, N).splitlines(True)
NEXT = history.render(LAYOUT, RUN, N + 1).splitlines(True)[-1]

# How a terminated ACK line can be damaged.
DAMAGE = {
    'nul-part': lambda line: line[:9] + '\0' * (len(line) - 11) + '\r\n',
    'nul-line': lambda line: '\0' * (len(line) - 2) + '\r\n',
    'nul-all': lambda line: '\0' * len(line),    # its newline too
    'earlier': earlier,                          # a repeated old line
    'earlier-over': lambda line: earlier(line) + line[len(earlier(line)):],
    'writer': lambda line: line[:14] + '[  12.3] virtio_net' + line[14:],
    'flip-seq': lambda line: flip(line, 1),
    'flip-idx': lambda line: flip(line, 2),
    'flip-gen': lambda line: flip(line, 3),
    'flip-sum': lambda line: flip(line, 4),
    'bad-sum': lambda line: line[:-10] + 'deadbeef\r\n',
}
# How the console's last line can be cut: its first n characters.
CUTS = (5, 7, 9, 11, 14, -5)


def tails(before_kinds=None):
    """(name, damaged lines) for the last one or two ACK lines; the line
    before the last is damaged in each way of *before_kinds* (default:
    all)."""
    last, before = LINES[-1], LINES[-2]
    kinds = sorted(DAMAGE.items())
    befores = [(k, d) for k, d in kinds
               if before_kinds is None or k in before_kinds]
    out = []
    for name, damage in kinds:
        out.append(((name,), [damage(last)]))
    for n in CUTS:
        out.append((('cut%d' % n,), [last[:n]]))
    for (b, d1), (a, d2) in itertools.product(befores, kinds):
        out.append(((b, a), [d1(before), d2(last)]))
    for (b, d1), n in itertools.product(befores, CUTS):
        out.append(((b, 'cut%d' % n), [d1(before), last[:n]]))
    return out


_DISKS = {}


def image(writes, inflight, extra):
    """The disk after *writes* writes of RUN (and write N in flight when
    asked), then *extra* writes of OTHER; built once."""
    key = (writes, inflight, extra)
    if key not in _DISKS:
        data = disk(writes)
        if inflight:
            idx = LAYOUT.seq_block(N)
            data[idx * BS:(idx + 1) * BS] = blocks.make_block(
                RUN, idx, LAYOUT.seq_gen(N))
        _DISKS[key] = bytes(disk(extra, OTHER, data))
    return _DISKS[key]


class TestBlindTail(testtools.TestCase):

    def judge(self, text, writes, tolerate, inflight=False, extra=None):
        """Check a disk holding *writes* writes (and write N in flight,
        when asked) against the console *text*."""
        h = history.parse(text if extra is None else [text, extra])
        data = image(writes, inflight, EXTRA if extra is not None else 0)
        return h, checker.check(h, data, tolerate=tolerate)

    def matrix(self, extra=None, before_kinds=None):
        """Every damaged tail, K = 0..3 newest writes lost, with and
        without tolerance; *extra* is a next boot's console."""
        head = ''.join(LINES[:-2])
        seen = 0
        for name, damaged in tails(before_kinds):
            text = head + ''.join(LINES[-2:-len(damaged) or None]) + \
                ''.join(damaged)
            for k, tolerate in itertools.product(range(4),
                                                 ((), ARTEFACTS)):
                for inflight in ((False, True) if k == 0 else (False,)):
                    h, res = self.judge(text, N - k, tolerate, inflight,
                                        extra)
                    where = (name, k, tolerate, inflight, res.message)
                    seen += 1
                    if k:
                        # the newest write, acknowledged, is missing
                        self.assertNotEqual('INTACT', res.verdict, where)
                        if k > len(damaged):
                            # a counted ACK's write is lost
                            self.assertEqual('DATA-LOSS', res.verdict,
                                             where)
                        else:
                            self.assertIn(res.verdict,
                                          ('DATA-LOSS', 'ERROR'), where)
                    elif tolerate or not [p for p in h.problems]:
                        self.assertEqual('INTACT', res.verdict, where)
                    else:
                        self.assertEqual('ERROR', res.verdict, where)
        return seen

    def test_damaged_tail_never_hides_a_lost_write(self):
        # 204 tails, each with K = 0 (written in flight or not), 1, 2, 3,
        # with and without tolerance
        self.assertEqual(10 * (11 + 6 + 11 * 11 + 11 * 6), self.matrix())

    def test_damaged_tail_of_a_run_before_another(self):
        # The same, per run: run RUN's tail damaged, then OTHER boots
        # (a hard reboot) and writes blocks 0..29 of the cycle, not those
        # of RUN's last writes (96..99: blocks 32..35).  A line cut at the
        # end of RUN's console is glued to the next boot's first line.
        self.assertEqual(10 * (11 + 6 + 4 * 11 + 4 * 6), self.matrix(
            extra=history.render(LAYOUT, OTHER, EXTRA),
            before_kinds=('nul-all', 'earlier', 'writer', 'flip-sum')))

    def test_cut_last_line_proves_its_write(self):
        # the guest prints an ACK only once its write is durable: the
        # start of the next ACK proves that write
        text = ''.join(LINES) + NEXT[:13]          # 'MTP ACK 100 1'
        h = history.parse(text)
        self.assertEqual((99, 100, 100), (h.last_seq, h.runs[0].proven_seq,
                                          h.runs[0].claimed_seq))
        self.assertEqual([('partial-tail', 0, 103)],
                         [e[:3] for e in h.runs[0].evidence])
        res = checker.check(h, bytes(disk(N + 1)))
        self.assertEqual('INTACT', res.verdict, res.message)
        self.assertEqual(101, res.inflight['seq'])
        res = checker.check(h, bytes(disk(N)))
        self.assertEqual('DATA-LOSS', res.verdict, res.message)
        self.assertEqual([100], res.lost_seqs)
        # "MTP A" starts nothing but an ACK, too short for a record
        h = history.parse(''.join(LINES) + 'MTP A')
        self.assertEqual(100, h.runs[0].proven_seq)
        self.assertEqual(['partial-tail'], [w.kind for w in h.warnings])
        # "MTP " may start any record: no evidence
        h = history.parse(''.join(LINES) + 'MTP ')
        self.assertEqual((99, 99), (h.runs[0].proven_seq,
                                    h.runs[0].claimed_seq))

    def test_cut_line_that_is_not_the_next_ack_is_only_a_claim(self):
        h = history.parse(''.join(LINES) + 'MTP ACK 5 69')
        self.assertEqual((99, 100), (h.runs[0].proven_seq,
                                     h.runs[0].claimed_seq))
        res = checker.check(h, bytes(disk(N)))
        self.assertEqual('ERROR', res.verdict, res.message)
        self.assertEqual(1, res.unconfirmed_blocks)
        self.assertEqual(0, res.lost_writes)
        self.assertIn('not on the disk (lost, or the tail is damaged)',
                      res.message)
        self.assertIn('console tail of run %s shows ACKs after seq 99'
                      % RUN, res.message)

    def test_old_line_repeated_after_higher_ones(self):
        h = history.parse(''.join(LINES) + LINES[7])
        self.assertEqual(['duplicate'], [w.kind for w in h.warnings])
        self.assertEqual(100, h.runs[0].claimed_seq)
        self.assertEqual('ERROR', checker.check(h, bytes(disk(N))).verdict)
        self.assertEqual('INTACT',
                         checker.check(h, bytes(disk(N + 1))).verdict)
        # repeated lines that higher ACKs follow (overlapping captures)
        # say nothing of the tail
        h = history.parse(''.join(LINES[:50] + LINES[40:]))
        self.assertEqual(99, h.runs[0].claimed_seq)
        self.assertEqual('INTACT', checker.check(h, bytes(disk(N))).verdict)

    def test_done_count_is_evidence(self):
        # DONE 100 after ACK 97: ACKs 98 and 99 are missing, and their
        # writes must be on the disk
        text = ''.join(LINES[:-2]) + 'MTP DONE 100\r\n'
        h = history.parse(text)
        self.assertEqual(['gap'], [p.kind for p in h.problems])
        self.assertEqual((97, 97, 99), (h.last_seq, h.runs[0].proven_seq,
                                        h.runs[0].claimed_seq))
        self.assertEqual(['done'], [e.kind for e in h.runs[0].evidence])
        for writes, verdict in ((N, 'INTACT'), (N - 1, 'ERROR'),
                                (N - 2, 'ERROR'), (N - 3, 'DATA-LOSS')):
            res = checker.check(h, bytes(disk(writes)), tolerate=('gap',))
            self.assertEqual(verdict, res.verdict, (writes, res.message))
            self.assertIsNone(res.inflight)
        # a DONE count below the ACKs claims nothing
        h = history.parse(''.join(LINES) + 'MTP DONE 50\r\n')
        self.assertEqual(99, h.runs[0].claimed_seq)

    def test_nuls_after_the_last_ack(self):
        h = history.parse(''.join(LINES) + '\0' * 30)
        self.assertEqual([], h.problems)
        self.assertEqual(['nul'], [w.kind for w in h.warnings])
        self.assertEqual(100, h.runs[0].claimed_seq)
        self.assertEqual('ERROR', checker.check(h, bytes(disk(N))).verdict)
        self.assertEqual('INTACT',
                         checker.check(h, bytes(disk(N + 1))).verdict)
        # a hole as long as three ACK lines may have hidden three (the
        # bound assumes the shortest lines: here it allows one more)
        h = history.parse(''.join(LINES[:-3]) + '\0' * len(
            ''.join(LINES[-3:])))
        self.assertIn(h.runs[0].claimed_seq, (99, 100))
        # NULs in the next boot's console are not this run's
        h = history.parse([''.join(LINES), '\0\0\r\n' + history.render(
            LAYOUT, OTHER, 3)])
        self.assertEqual(99, h.runs[0].claimed_seq)

    def test_evidence_is_per_run(self):
        # run RUN's tail is damaged; OTHER's is not
        text = ''.join(LINES[:-1]) + DAMAGE['bad-sum'](LINES[-1])
        h = history.parse([text, history.render(LAYOUT, OTHER, 10)])
        self.assertEqual([(98, 99), (9, 9)],
                         [(r.last_seq, r.claimed_seq) for r in h.runs])
        data = disk(10, OTHER, disk(N - 1))
        res = checker.check(h, bytes(data), tolerate=ARTEFACTS)
        self.assertEqual('ERROR', res.verdict, res.message)
        self.assertEqual(1, res.unconfirmed_blocks)
        self.assertEqual(99, res.runs[0]['claimed_seq'])
        self.assertEqual(['bad-sum at console 0 line 102'],
                         res.runs[0]['evidence'])
        # a discarded run's tail asks nothing of the disk
        res = checker.check(h, bytes(disk(10, OTHER)), tolerate=ARTEFACTS,
                            discarded_runs=[RUN])
        self.assertEqual('INTACT', res.verdict, res.message)
