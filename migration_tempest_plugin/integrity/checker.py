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

"""The integrity checker: a pure function of (history, disk bytes).

``check(history, image)`` rebuilds, chunk by chunk, the exact bytes the disk
must hold after the acknowledged writes and compares big slices; only a
chunk that differs is examined block by block.  Every block is classified:

intact
    holds exactly what the history says.
stale
    a valid block of this position, but older than the last acknowledged
    write to it: that write is lost.
corrupt
    copies disagree, checksum fails, unparseable, zeroed, torn (sectors of
    two generations) or missing from a short image.
misplaced
    a valid block, but of another position (idx != position) or written by
    a run other than this image's builder and the history's runs.
undone
    a write of a run that the caller discarded (``discarded_runs``): the
    operation that should have undone it did not.
ahead
    newer than anything acknowledged: the history is incomplete.
unconfirmed
    a write that only the damaged tail of the console claims (see below)
    is not on the disk: lost, or the tail claims too much.

A history may hold several runs (boots).  Each block must hold the newest
acknowledged write to it of the runs that are not discarded, in their
order, and the static region its pre-filled content.

With a layout that empties blocks (``zero=<k>``, blocks.Layout.op), a block
whose last acknowledged write zeroed it must read as zeros; one whose last
acknowledged write discarded it, as zeros or as what the block held before
the discard (a discard is a hint the disk may ignore: counted in
``discard_kept_blocks``, not a loss).  Anything older is stale: zeros
where a later record was acknowledged are reported as stale, naming the
write that zeroed them.

The one write in flight at the end of each run (seq = its last ack + 1)
may hold the old content, the new content or a sector-wise mix, unless a
later run's acknowledged write covers its block; that is not a loss.  After
``MTP DONE`` there is no write in flight.  When the console's tail shows
more ACKs than it counts (history.Run.evidence), the writes up to the
run's ``proven_seq`` are required as any other, those up to its
``claimed_seq`` must be on the disk or the verdict is ERROR, and the write
in flight is the one after.

Verdicts: ERROR when the history is unusable (no RUN, a RUN of another
disk, FATAL, label and RUN disagree, no layout, a discarded run the history
does not have, or no history at all for a disk whose work region was
written); otherwise DATA-LOSS when any block is stale, corrupt, misplaced
or undone (such evidence holds even if the history has gaps, because every
ACK that is counted was validated against its seq); otherwise ERROR when a
block is ahead or unconfirmed or the history has problems (gap, order,
malformed records or bad sums) not named in *tolerate*; otherwise INTACT.
"""

import argparse
import dataclasses
import json
import mmap
import os
import sys
import typing

from migration_tempest_plugin.integrity import blocks
from migration_tempest_plugin.integrity import history as history_mod

INTACT = 'INTACT'
DATA_LOSS = 'DATA-LOSS'
ERROR = 'ERROR'

CHUNK_BLOCKS = 256          # 1 MiB compared at once
FIRST_OFFSETS = 10
LOSS_KINDS = ('stale', 'corrupt', 'misplaced', 'undone')


@dataclasses.dataclass
class Finding:
    """One block that is not as expected."""
    offset: int            # byte offset of the block
    block: int             # block index
    kind: str              # stale | corrupt | misplaced | undone | ahead
    #                        | unconfirmed
    detail: str
    first_byte: int        # byte offset of the first byte that differs
    lost_seq: typing.Optional[int] = None  # acknowledged write it lost
    lost_run: typing.Optional[str] = None  # the run of that write

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Result:
    verdict: str
    message: str = ''
    acked_writes: int = 0
    checked_blocks: int = 0
    intact_blocks: int = 0
    lost_writes: int = 0
    stale_blocks: int = 0
    corrupt_blocks: int = 0
    misplaced_blocks: int = 0
    ahead_blocks: int = 0
    findings: list = dataclasses.field(default_factory=list)
    history_problems: list = dataclasses.field(default_factory=list)
    inflight: typing.Optional[dict] = None
    layout: typing.Optional[dict] = None
    run: typing.Optional[str] = None
    image_bytes: int = 0
    trailing_bytes: int = 0
    write_errors: int = 0
    discard_kept_blocks: int = 0
    undone_blocks: int = 0
    unconfirmed_blocks: int = 0
    runs: list = dataclasses.field(default_factory=list)
    discarded_runs: list = dataclasses.field(default_factory=list)

    @property
    def first_offsets(self):
        """The first findings as (offset, kind) pairs, in disk order."""
        return [(f.offset, f.kind) for f in self.findings[:FIRST_OFFSETS]]

    @property
    def lost_seqs(self):
        return sorted(f.lost_seq for f in self.findings
                      if f.lost_seq is not None)

    @property
    def lost(self):
        """The lost acknowledged writes as (run, seq), in history order."""
        order = {r['run']: i for i, r in enumerate(self.runs)}
        return sorted(((f.lost_run, f.lost_seq) for f in self.findings
                       if f.lost_seq is not None),
                      key=lambda w: (order.get(w[0], -1), w[1]))

    def to_dict(self):
        d = {f.name: getattr(self, f.name)
             for f in dataclasses.fields(self) if f.name != 'findings'}
        d['history_problems'] = [p.to_dict() for p in self.history_problems]
        d['first_offsets'] = [f.to_dict()
                              for f in self.findings[:FIRST_OFFSETS]]
        return d


def _first_diff(a, b):
    """Index of the first differing byte of two equal-length buffers."""
    a, b = bytes(a), bytes(b)
    if len(a) != len(b):
        n = min(len(a), len(b))
        if a[:n] == b[:n]:
            return n
        a, b = a[:n], b[:n]
    lo, hi = 0, len(a)
    while hi - lo > 64:
        mid = (lo + hi) // 2
        if a[lo:mid] != b[lo:mid]:
            hi = mid
        else:
            lo = mid
    for i in range(lo, hi):
        if a[i] != b[i]:
            return i
    return hi


def _summary(problems, shown=3):
    """The first problems and how many more: a message stays one line
    however broken the console is."""
    text = '; '.join(str(p) for p in problems[:shown])
    if len(problems) > shown:
        text += '; and %d more' % (len(problems) - shown)
    return text


def _sectors_of(data, candidates):
    """Whether every 512-byte sector of *data* is the same sector of one
    of the *candidates* (4096-byte blocks)."""
    if len(data) != blocks.BLOCK_SIZE:
        return False
    for s in range(0, blocks.BLOCK_SIZE, blocks.SECTOR_SIZE):
        e = s + blocks.SECTOR_SIZE
        piece = data[s:e]
        if not any(piece == c[s:e] for c in candidates):
            return False
    return True


def _landing(data, olds, news):
    """How far writes in flight landed on a block: ('old', i) when it holds
    olds[i], ('new', j) when it holds news[j], ('mixed', i) when each
    sector is that of olds[i] or of a new content, else (None, None)."""
    for i, old in enumerate(olds):
        if data == old:
            return 'old', i
    for j, new in enumerate(news):
        if data == new:
            return 'new', j
    if news:
        for i, old in enumerate(olds):
            if _sectors_of(data, [old] + list(news)):
                return 'mixed', i
    return None, None


class _Active(object):
    """A run whose acknowledged writes the disk must keep."""

    def __init__(self, pos, hrun, entry):
        self.pos = pos                  # among the kept runs, in order
        self.run = hrun.run
        self.runi = int(hrun.run, 16)
        self.last = hrun.claimed_seq    # writes up to here are expected
        self.proven = hrun.proven_seq   # writes up to here are proven
        self.done = hrun.done is not None
        self.entry = entry              # its entry in Result.runs


class _Checker(object):

    def __init__(self, hist, image, tolerate=(), discarded=frozenset()):
        self.hist = hist
        self.tolerate = frozenset(tolerate)
        self.discarded = discarded
        self.mv = memoryview(image).cast('B') if not isinstance(
            image, (bytes, bytearray)) else memoryview(image)
        self.size = len(self.mv)
        self.res = Result(verdict=INTACT, image_bytes=self.size)
        # one run and nothing discarded: findings read as they always did
        self.single = hist is None or (len(hist.runs) <= 1 and
                                       not discarded)
        self.active = []
        self.inflight_at = {}
        if hist is not None:
            self.res.history_problems = list(hist.problems)
            self.res.write_errors = len(hist.write_errors)
            self.res.run = hist.run

    # -- helpers -----------------------------------------------------------

    def block(self, idx):
        off = idx * blocks.BLOCK_SIZE
        return self.mv[off:off + blocks.BLOCK_SIZE].tobytes()

    def add(self, idx, kind, detail, expected, lost=None):
        """A finding; *lost* is the (run, seq) of the acknowledged write
        that the block should hold, if it is lost."""
        off = idx * blocks.BLOCK_SIZE
        first = off + _first_diff(self.block(idx), expected)
        lost_run, lost_seq = lost if lost else (None, None)
        self.res.findings.append(Finding(off, idx, kind, detail, first,
                                         lost_seq, lost_run))

    def error(self, message):
        self.res.verdict = ERROR
        self.res.message = 'ERROR: ' + message
        return self.res

    # -- the history of a block ----------------------------------------------

    def first_seq(self, idx):
        lay = self.layout
        return ((idx - lay.work_first) * self.inv) % lay.work_count

    def owner(self, idx):
        """(run, gen) of the newest expected write to work block *idx*, or
        (None, 0) for the image's content."""
        r = self.first_seq(idx)
        for a in self.steps:
            if a.last >= r:
                return a, (a.last - r) // self.layout.work_count + 1
        return None, 0

    def chain(self, idx):
        """Every expected write to work block *idx*, newest first, as (run,
        gen), ending with (None, 0): the image's content."""
        r = self.first_seq(idx)
        wc = self.layout.work_count
        out = []
        for a in reversed(self.active):
            if a.last >= r:
                out.extend((a, g) for g in range((a.last - r) // wc + 1,
                                                 0, -1))
        out.append((None, 0))
        return out

    def seq(self, idx, gen):
        return self.first_seq(idx) + (gen - 1) * self.layout.work_count

    def content(self, idx, a, gen):
        """What block *idx* holds after write (a, gen)."""
        lay = self.layout
        if a is None:
            return blocks.make_block(lay.image_id, idx, 0)
        if lay.op(self.seq(idx, gen)) != blocks.WRITE:
            return blocks.ZERO_BLOCK
        return blocks.make_block(a.run, idx, gen)

    def kept(self, idx, chain, k):
        """[what block *idx* may still hold when write chain[k] discarded
        it]: its content before the discard (before a run of discards);
        [] when chain[k] is not a discard or what came before was zeros,
        which the expected block already is."""
        lay = self.layout
        j = k
        while chain[j][0] is not None and \
                lay.op(self.seq(idx, chain[j][1])) == blocks.DISCARD:
            j += 1
        if j == k:
            return []
        kept = self.content(idx, *chain[j])
        return [] if kept == blocks.ZERO_BLOCK else [kept]

    def name(self, a, gen):
        """A write, as findings name it."""
        if self.single:
            return 'gen %d' % gen
        return 'image gen 0' if a is None else 'run %s gen %d' % (a.run, gen)

    # -- expected content --------------------------------------------------

    def expected_work(self, first, count):
        """Bytes the work blocks [first, first+count) must hold (one run)."""
        lay = self.layout
        wc, wf = lay.work_count, lay.work_first
        q, m = divmod(self.last_seq + 1, wc)
        inv = self.inv
        img, run = lay.image_id, self.run
        imgi = int(img, 16)
        runi = int(run, 16) if run else 0
        fmt = blocks._RECORD_FMT
        hi, hg, mask = blocks.HASH_IDX, blocks.HASH_GEN, blocks.MASK32
        copies = blocks.COPIES
        parts = []
        zeroes = lay.zero_every
        zero_block = '\0' * blocks.BLOCK_SIZE
        for i in range(first, first + count):
            r = ((i - wf) * inv) % wc
            gen = q + 1 if r < m else q
            if gen and zeroes and lay.op(r + (gen - 1) * wc) != blocks.WRITE:
                parts.append(zero_block)
            elif gen:
                parts.append((fmt % (run, i, gen,
                                     (runi ^ (i * hi) ^ (gen * hg)) & mask))
                             * copies)
            else:
                parts.append((fmt % (img, i, 0, (imgi ^ (i * hi)) & mask))
                             * copies)
        return ''.join(parts).encode('ascii')

    def expected_work_runs(self, first, count):
        """The same for several runs: each block holds the newest write of
        the newest run that wrote it (self.steps)."""
        lay = self.layout
        wc, wf = lay.work_count, lay.work_first
        inv = self.inv
        img = lay.image_id
        imgi = int(img, 16)
        steps = [(a.last, a.run, a.runi) for a in self.steps]
        fmt = blocks._RECORD_FMT
        hi, hg, mask = blocks.HASH_IDX, blocks.HASH_GEN, blocks.MASK32
        copies = blocks.COPIES
        parts = []
        zeroes = lay.zero_every
        zero_block = '\0' * blocks.BLOCK_SIZE
        for i in range(first, first + count):
            r = ((i - wf) * inv) % wc
            for last, run, runi in steps:
                if last >= r:
                    gen = (last - r) // wc + 1
                    if zeroes and \
                            lay.op(r + (gen - 1) * wc) != blocks.WRITE:
                        parts.append(zero_block)
                    else:
                        parts.append((fmt % (run, i, gen, (
                            runi ^ (i * hi) ^ (gen * hg)) & mask)) * copies)
                    break
            else:
                parts.append((fmt % (img, i, 0, (imgi ^ (i * hi)) & mask))
                             * copies)
        return ''.join(parts).encode('ascii')

    # -- classification ----------------------------------------------------

    def classify(self, idx, expected):
        """Classify a block that differs from *expected*."""
        if self.layout.region(idx) != 'work':
            self.classify_static(idx, expected)
        else:
            self.classify_work(idx, expected)

    def classify_static(self, idx, expected):
        data = self.block(idx)
        if len(data) < blocks.BLOCK_SIZE:
            self.add(idx, 'corrupt', 'missing: image ends at byte %d'
                     % self.size, expected)
            return
        info = blocks.inspect_block(data)
        if not info.ok:
            self.add(idx, 'corrupt', 'static block: %s' % info.reason,
                     expected)
            return
        rec = info.record
        if rec.idx != idx:
            self.add(idx, 'misplaced', 'holds block %d (%s gen %d)'
                     % (rec.idx, rec.run, rec.gen), expected)
        elif rec.run != self.layout.image_id or rec.gen != 0:
            self.add(idx, 'misplaced', 'foreign block: run %s gen %d'
                     % (rec.run, rec.gen), expected)
        else:  # pragma: no cover - the image's record means same bytes
            self.add(idx, 'corrupt', 'unexpected content', expected)

    def classify_work(self, idx, expected):
        lay = self.layout
        data = self.block(idx)
        chain = self.chain(idx)
        # the newest write known acknowledged: the ones before it in the
        # chain are only claimed by the console's damaged tail
        k = 0
        while chain[k][0] is not None and \
                self.seq(idx, chain[k][1]) > chain[k][0].proven:
            k += 1
        ref, egen = chain[k]
        lost = (ref.run, self.seq(idx, egen)) if ref is not None else None
        if len(data) < blocks.BLOCK_SIZE:
            self.add(idx, 'corrupt', 'missing: image ends at byte %d'
                     % self.size, expected, lost)
            return
        flying = self.inflight_at.get(idx, ())
        news = [new for _, _, new in flying]
        if flying:
            olds = [expected] + self.kept(idx, chain, 0)
            state, which = _landing(data, olds, news)
            if state is not None:
                for n, (_, inflight, new) in enumerate(flying):
                    inflight['state'] = ('old' if state == 'new' and
                                         which != n else state)
                if which and state != 'new':
                    self.res.discard_kept_blocks += 1
                return
        if k:
            # a write that only the console's tail claims is not there: it
            # may be lost, or the tail may claim too much
            olds = [self.content(idx, ref, egen)] + self.kept(idx, chain, k)
            claimed = [self.content(idx, a, g) for a, g in chain[:k]]
            if _landing(data, olds, claimed + news)[0] is not None:
                top, tgen = chain[0]
                self.add(idx, 'unconfirmed', '%s (seq %d) not on the disk: '
                         'the console\'s tail suggests it was acknowledged'
                         % (self.name(top, tgen), self.seq(idx, tgen)),
                         expected)
                return
        for _, inflight, _ in flying:
            inflight['state'] = 'damaged'
        if k:
            expected = self.content(idx, ref, egen)
        kept = self.kept(idx, chain, k)
        if not flying and kept and data == kept[0]:
            self.res.discard_kept_blocks += 1
            return
        info = blocks.inspect_block(data)
        if info.reason == 'zeroed' and ref is not None:
            for a, g in chain[k + 1:]:
                if a is not None and \
                        lay.op(self.seq(idx, g)) != blocks.WRITE:
                    self.add(idx, 'stale', 'zeros of seq %d, last '
                             'acknowledged %s (seq %d)' % (
                                 self.seq(idx, g), self.name(ref, egen),
                                 lost[1]), expected, lost)
                    return
        if not info.ok:
            self.add(idx, 'corrupt', 'work block: %s' % info.reason,
                     expected, lost)
            return
        rec = info.record
        if rec.idx != idx:
            self.add(idx, 'misplaced', 'holds block %d (%s gen %d)'
                     % (rec.idx, rec.run, rec.gen), expected, lost)
            return
        if rec.run in self.discarded:
            self.add(idx, 'undone', 'run %s gen %d (seq %d) of a discarded '
                     'run, expected %s' % (rec.run, rec.gen,
                                           self.seq(idx, rec.gen),
                                           self.name(ref, egen)),
                     expected, lost)
            return
        held = self.by_run.get(rec.run)
        if held is None and (rec.run != lay.image_id or rec.gen != 0):
            self.add(idx, 'misplaced', 'foreign block: run %s gen %d'
                     % (rec.run, rec.gen), expected, lost)
            return
        # an earlier write than the newest acknowledged one: it is lost
        # (a write of an earlier run, acknowledged or not, is older than
        # any write of a later run)
        older = ref is not None and (
            held is None or held.pos < ref.pos or
            (held is ref and rec.gen < egen))
        if older:
            self.add(idx, 'stale', '%s, last acknowledged %s (seq %d)'
                     % (self.name(held, rec.gen), self.name(ref, egen),
                        lost[1]), expected, lost)
        elif held is not None and (ref is None or held.pos > ref.pos or
                                   rec.gen > egen):
            self.add(idx, 'ahead', '%s, last acknowledged %s'
                     % (self.name(held, rec.gen), self.name(ref, egen)),
                     expected)
        else:  # pragma: no cover - same record means same bytes
            self.add(idx, 'corrupt', 'unexpected content', expected, lost)

    def compare_range(self, first, count, render):
        """Compare blocks [first, first+count) chunk by chunk."""
        bs = blocks.BLOCK_SIZE
        end = first + count
        for c in range(first, end, CHUNK_BLOCKS):
            n = min(CHUNK_BLOCKS, end - c)
            expected = render(c, n)
            # memoryview == bytes compares element by element; a bytes
            # copy compares with memcmp and is an order of magnitude faster
            if self.mv[c * bs:(c + n) * bs].tobytes() == expected:
                continue
            for i in range(n):
                e = expected[i * bs:(i + 1) * bs]
                if self.block(c + i) != e:
                    self.classify(c + i, e)

    # -- main --------------------------------------------------------------

    def run_check(self):
        hist = self.hist
        if hist is not None and hist.fatal_problems:
            return self.error('unusable history: %s'
                              % _summary(hist.fatal_problems))
        runs = hist.runs if hist is not None else []
        unknown = sorted(self.discarded - {r.run for r in runs})
        if unknown:
            return self.error('discarded_runs names runs that the history '
                              'does not have: %s (known: %s)'
                              % (', '.join(unknown),
                                 ', '.join(r.run for r in runs) or 'none'))
        hist_layout = hist.layout if hist is not None else None
        label = None
        label_intact = False
        if self.size >= blocks.BLOCK_SIZE:
            label, label_intact = blocks.parse_label(self.block(0))
        if label is not None and hist_layout is not None and \
                label != hist_layout:
            return self.error('disk label %s does not match the RUN line %s '
                              '(wrong disk?)' % (label.to_dict(),
                                                 hist_layout.to_dict()))
        layout = label or hist_layout
        if layout is None:
            return self.error('no disk label and no layout in the history')
        self.layout = layout
        # gcd(step, work_count) = 1 (Layout.validate), so step has an
        # inverse: the first seq that writes a block, without a search
        self.inv = pow(layout.step, -1, layout.work_count)
        res = self.res
        res.layout = layout.to_dict()
        self.kept_runs(runs)
        bs = blocks.BLOCK_SIZE
        total = layout.total_blocks
        res.checked_blocks = total
        res.trailing_bytes = max(0, self.size - total * bs)
        self.writes_in_flight()

        # label
        expected_label = blocks.label_block(layout)
        if not label_intact:
            if label is None:
                self.add(0, 'corrupt', 'label unreadable (layout taken '
                         'from the RUN line)', expected_label)
            else:
                self.add(0, 'corrupt', 'label damaged (layout read from '
                         'its intact lines)', expected_label)
        # static and work regions
        img = layout.image_id
        self.compare_range(
            layout.static_first, layout.static_count,
            lambda f, n: blocks.render_blocks(img, f, n, 0))
        if len(self.active) > 1:
            render = self.expected_work_runs
        else:
            a = self.active[0] if self.active else None
            self.run = a.run if a else None
            self.last_seq = a.last if a else -1
            render = self.expected_work
        self.compare_range(layout.work_first, layout.work_count, render)
        return self.finish()

    def kept_runs(self, runs):
        """The runs whose writes the disk keeps, their entries in
        Result.runs, and the steps of the expected content: newest run
        first, each with more writes than every later one."""
        res = self.res
        for r in runs:
            discarded = r.run in self.discarded
            entry = {'run': r.run, 'where': 'console %d line %d'
                     % r.location, 'acked_writes': r.acked_writes,
                     'last_seq': r.last_seq, 'proven_seq': r.proven_seq,
                     'claimed_seq': r.claimed_seq, 'done': r.done,
                     'discarded': discarded, 'inflight': None,
                     'evidence': ['%s at console %d line %d' % e[:3]
                                  for e in r.evidence]}
            res.runs.append(entry)
            if discarded:
                res.discarded_runs.append(r.run)
            else:
                self.active.append(_Active(len(self.active), r, entry))
        self.by_run = {a.run: a for a in self.active}
        res.acked_writes = sum(a.entry['acked_writes'] for a in self.active)
        self.steps = []
        for a in reversed(self.active):
            if not self.steps or a.last > self.steps[-1].last:
                self.steps.append(a)

    def writes_in_flight(self):
        """The write after each kept run's last expected one, unless the run
        said DONE: it may be on the disk, in part or not at all, unless a
        later run's expected write covers its block."""
        layout = self.layout
        for a in self.active:
            if a.done:
                continue
            seq = a.last + 1
            idx, gen = layout.seq_block(seq), layout.seq_gen(seq)
            a.entry['inflight'] = inflight = {
                'seq': seq, 'block': idx, 'gen': gen, 'state': 'old'}
            owner = self.owner(idx)[0]
            if owner is not None and owner.pos > a.pos:
                inflight['state'] = 'covered'
                continue
            self.inflight_at.setdefault(idx, []).append(
                (a, inflight, self.content(idx, a, gen)))
        if self.active:
            self.res.inflight = self.active[-1].entry['inflight']

    def finish(self):
        res = self.res
        res.findings.sort(key=lambda f: f.offset)
        for f in res.findings:
            setattr(res, f.kind + '_blocks',
                    getattr(res, f.kind + '_blocks') + 1)
            if f.lost_seq is not None:
                res.lost_writes += 1
        res.intact_blocks = res.checked_blocks - len(res.findings)
        more = ''.join(', %s %d' % (k, getattr(res, k + '_blocks'))
                       for k in ('undone', 'unconfirmed')
                       if getattr(res, k + '_blocks'))
        counts = ('lost writes %d; stale %d, corrupt %d, misplaced %d, '
                  'ahead %d%s of %d blocks; %d acknowledged writes' % (
                      res.lost_writes, res.stale_blocks, res.corrupt_blocks,
                      res.misplaced_blocks, res.ahead_blocks, more,
                      res.checked_blocks, res.acked_writes))
        extra = ''
        if not self.single:
            extra += '; runs %s' % ', '.join(
                r['run'] + (' (discarded)' if r['discarded'] else '')
                for r in res.runs)
        for r in res.runs:
            if r['evidence'] and not r['discarded']:
                extra += ('; console tail of run %s shows ACKs after seq %d '
                          '(%s): up to seq %d expected, %d proven' % (
                              r['run'], r['last_seq'], r['evidence'][0],
                              r['claimed_seq'], r['proven_seq']))
        if res.inflight:
            extra += '; in-flight seq %d at block %d: %s' % (
                res.inflight['seq'], res.inflight['block'],
                res.inflight['state'])
        if res.write_errors:
            extra += '; guest saw %d write errors' % res.write_errors
        if res.discard_kept_blocks:
            extra += ('; %d discarded blocks kept their data'
                      % res.discard_kept_blocks)
        if res.history_problems:
            p = res.history_problems[0]
            extra += '; history: %d problems, first %s' % (
                len(res.history_problems), p)
        first = ''
        if res.findings:
            f = res.findings[0]
            first = '; first: %s block %d at offset %d (%s)' % (
                f.kind, f.block, f.offset, f.detail)
        loss = sum(getattr(res, k + '_blocks') for k in LOSS_KINDS)
        untolerated = [p for p in res.history_problems
                       if p.kind not in self.tolerate]
        used = self.used_without_history()
        if used:
            # Without a history the disk can only be judged as never used;
            # a written work region means the history is missing, and its
            # blocks would all look foreign: no verdict on them.
            res.verdict = ERROR
            extra = ('; no history, but %d work blocks differ from the '
                     'never-used image' % used) + extra
        elif loss:
            res.verdict = DATA_LOSS
        elif res.ahead_blocks or res.unconfirmed_blocks or untolerated:
            res.verdict = ERROR
            if res.unconfirmed_blocks:
                extra = ('; %d writes that the console\'s tail suggests '
                         'were acknowledged are not on the disk (lost, or '
                         'the tail is damaged)' % res.unconfirmed_blocks
                         ) + extra
            if res.ahead_blocks:
                extra = '; history incomplete: blocks newer than any ACK' \
                    + extra
        else:
            res.verdict = INTACT
        res.message = '%s: %s%s%s' % (res.verdict, counts, first, extra)
        return res

    def used_without_history(self):
        """Findings in the work region when there is no history at all."""
        if self.hist is not None:
            return 0
        return sum(1 for f in self.res.findings
                   if self.layout.region(f.block) == 'work')


def check(history, image, tolerate=(), discarded_runs=()):
    """Check disk *image* (bytes-like, the flattened raw disk) against
    *history* (a History, console text, or None for a never-used image;
    with None, a work region that is not pristine is ERROR: the history
    of the writes on it is missing).

    *tolerate* names history problem kinds that the caller expects from
    how it read the console, e.g. ('gap',) for a console polled through
    nova's API, whose source half is gone after a migration. Writes are
    sequential, so a later ACK still proves every earlier write was
    acknowledged: a gap does not change what the disk must hold. Tolerated
    problems stay in the report but do not make the verdict ERROR, so the
    disk may be INTACT on a history with such problems; fatal kinds, loss
    and ahead blocks are judged as without it.

    *discarded_runs* names runs (ids of History.runs) whose writes an
    operation undid: a revert of a cold migration or resize discards the
    runs booted on the destination, a rebuild from the image (evacuate on
    local storage) every earlier run.  The disk must hold the newest write
    of the other runs to each block; a block that holds a write of a
    discarded run is ``undone`` (a loss).  A name the history does not have
    is ERROR.

    Pure: reads its arguments, returns a Result.
    """
    if isinstance(discarded_runs, (str, bytes)):
        raise TypeError('discarded_runs is a collection of run ids, not '
                        'one id: %r' % (discarded_runs,))
    if isinstance(history, (str, bytes, list, tuple)):
        history = history_mod.parse(history)
    return _Checker(history, image, tolerate,
                    frozenset(discarded_runs)).run_check()


def main(argv=None):
    p = argparse.ArgumentParser(
        prog='python -m migration_tempest_plugin.integrity.checker',
        description='Check a raw disk image against guest console logs.')
    p.add_argument('image', help='raw disk image')
    p.add_argument('consoles', nargs='*',
                   help='console logs in order (source, then destination)')
    p.add_argument('--tag', help='read the records of agent MTP.<tag>')
    p.add_argument('--discard', action='append', default=[], metavar='RUN',
                   help='a run whose writes an operation undid (repeat)')
    p.add_argument('--tolerate', action='append', default=[],
                   metavar='KIND', help='a history problem kind to '
                   'tolerate (repeat)')
    args = p.parse_args(argv)
    texts = []
    for path in args.consoles:
        with open(path, 'rb') as f:
            texts.append(f.read())
    hist = history_mod.parse(texts, tag=args.tag) if texts else None
    with open(args.image, 'rb') as f:
        if os.fstat(f.fileno()).st_size:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        else:
            data = b''
        res = check(hist, data, args.tolerate, args.discard)
    print(json.dumps(res.to_dict(), indent=2, default=str))
    return {INTACT: 0, DATA_LOSS: 1}.get(res.verdict, 2)


if __name__ == '__main__':
    sys.exit(main())
