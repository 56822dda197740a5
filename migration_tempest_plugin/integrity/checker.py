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
    a valid block of this position, but an older generation than the last
    acknowledged write to it: that write is lost.
corrupt
    copies disagree, checksum fails, unparseable, zeroed, torn (sectors of
    two generations) or missing from a short image.
misplaced
    a valid block, but of another position (idx != position) or written by
    a run other than this image's builder and this workload.
ahead
    newer than anything acknowledged: the history is incomplete.

With a layout that empties blocks (``zero=<k>``, blocks.Layout.op), a block
whose last acknowledged write zeroed it must read as zeros; one whose last
acknowledged write discarded it, as zeros or as what the block held before
the discard (a discard is a hint the disk may ignore: counted in
``discard_kept_blocks``, not a loss).  Anything older is stale: zeros
where a later record was acknowledged are reported as stale, naming the
write that zeroed them.

The one write in flight when the console stopped (seq = last ack + 1) may
hold the old content, the new content or a sector-wise mix; that is not a
loss.  After ``MTP DONE`` there is no write in flight.

Verdicts: ERROR when the history is unusable (no RUN, a second RUN, FATAL,
label and RUN disagree, no layout, or no history at all for a disk whose
work region was written); otherwise DATA-LOSS when any block is
stale, corrupt or misplaced (such evidence holds even if the history has
gaps, because every ACK that is counted was validated against its seq);
otherwise ERROR when a block is ahead or the history has problems (gap,
order, malformed records or bad sums) not named in *tolerate*; otherwise
INTACT.
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
LOSS_KINDS = ('stale', 'corrupt', 'misplaced')


@dataclasses.dataclass
class Finding:
    """One block that is not as expected."""
    offset: int            # byte offset of the block
    block: int             # block index
    kind: str              # stale | corrupt | misplaced | ahead
    detail: str
    first_byte: int        # byte offset of the first byte that differs
    lost_seq: typing.Optional[int] = None  # acknowledged write it lost

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

    @property
    def first_offsets(self):
        """The first findings as (offset, kind) pairs, in disk order."""
        return [(f.offset, f.kind) for f in self.findings[:FIRST_OFFSETS]]

    @property
    def lost_seqs(self):
        return sorted(f.lost_seq for f in self.findings
                      if f.lost_seq is not None)

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


class _Checker(object):

    def __init__(self, hist, image, tolerate=()):
        self.hist = hist
        self.tolerate = frozenset(tolerate)
        self.mv = memoryview(image).cast('B') if not isinstance(
            image, (bytes, bytearray)) else memoryview(image)
        self.size = len(self.mv)
        self.res = Result(verdict=INTACT, image_bytes=self.size)
        if hist is not None:
            self.res.history_problems = list(hist.problems)
            self.res.write_errors = len(hist.write_errors)
            self.res.run = hist.run

    # -- helpers -----------------------------------------------------------

    def block(self, idx):
        off = idx * blocks.BLOCK_SIZE
        return self.mv[off:off + blocks.BLOCK_SIZE].tobytes()

    def add(self, idx, kind, detail, expected, lost_seq=None):
        off = idx * blocks.BLOCK_SIZE
        first = off + _first_diff(self.block(idx), expected)
        self.res.findings.append(Finding(off, idx, kind, detail, first,
                                         lost_seq))

    def error(self, message):
        self.res.verdict = ERROR
        self.res.message = 'ERROR: ' + message
        return self.res

    # -- expected content --------------------------------------------------

    def expected_gen(self, idx):
        return self.layout.expected_gen(idx, self.last_seq)

    def expected_work(self, first, count):
        """Bytes the work blocks [first, first+count) must hold."""
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

    def block_for(self, idx, gen):
        """What generation *gen* of block *idx* holds once written."""
        lay = self.layout
        if gen == 0:
            return blocks.make_block(lay.image_id, idx, 0)
        if lay.op(lay.seq_of(idx, gen)) != blocks.WRITE:
            return blocks.ZERO_BLOCK
        return blocks.make_block(self.run, idx, gen)

    def before_discard(self, idx, gen):
        """What block *idx* may still hold when generation *gen* discarded
        it: its content before the discard (before a run of discards),
        or None when gen is not a discard or what came before was zeros,
        which the expected block already is."""
        lay = self.layout
        if gen < 1 or lay.op(lay.seq_of(idx, gen)) != blocks.DISCARD:
            return None
        while gen >= 1 and lay.op(lay.seq_of(idx, gen)) == blocks.DISCARD:
            gen -= 1
        kept = self.block_for(idx, gen)
        return None if kept == blocks.ZERO_BLOCK else kept

    def zeroed_by(self, idx, gen):
        """The latest seq before generation *gen* that emptied block
        *idx*, or None."""
        lay = self.layout
        for g in range(gen - 1, 0, -1):
            seq = lay.seq_of(idx, g)
            if lay.op(seq) != blocks.WRITE:
                return seq
        return None

    # -- classification ----------------------------------------------------

    def classify(self, idx, expected):
        """Classify a block that differs from *expected*."""
        lay = self.layout
        region = lay.region(idx)
        data = self.block(idx)
        lost = None
        egen = None
        if region == 'work':
            egen = self.expected_gen(idx)
            if egen >= 1:
                lost = lay.first_seq(idx) + (egen - 1) * lay.work_count
        if len(data) < blocks.BLOCK_SIZE:
            self.add(idx, 'corrupt', 'missing: image ends at byte %d'
                     % self.size, expected, lost)
            return
        kept = self.before_discard(idx, egen) if egen else None
        if idx == self.inflight_block:
            for old in filter(None, (expected, kept)):
                state = blocks.sector_mix(data, old, self.inflight_new)
                if state is not None:
                    self.res.inflight['state'] = state
                    if old is kept and state != 'new':
                        self.res.discard_kept_blocks += 1
                    return
            self.res.inflight['state'] = 'damaged'
        elif kept is not None and data == kept:
            self.res.discard_kept_blocks += 1
            return
        info = blocks.inspect_block(data)
        if info.reason == 'zeroed' and egen and \
                self.zeroed_by(idx, egen) is not None:
            self.add(idx, 'stale', 'zeros of seq %d, last acknowledged gen '
                     '%d (seq %d)' % (self.zeroed_by(idx, egen), egen, lost),
                     expected, lost)
            return
        if not info.ok:
            self.add(idx, 'corrupt', '%s block: %s' % (region, info.reason),
                     expected, lost)
            return
        rec = info.record
        if rec.idx != idx:
            self.add(idx, 'misplaced', 'holds block %d (%s gen %d)'
                     % (rec.idx, rec.run, rec.gen), expected, lost)
            return
        owned = ((rec.run == lay.image_id and rec.gen == 0) or
                 (region == 'work' and self.run is not None and
                  rec.run == self.run and rec.gen >= 1))
        if not owned:
            self.add(idx, 'misplaced', 'foreign block: run %s gen %d'
                     % (rec.run, rec.gen), expected, lost)
            return
        if region != 'work':  # pragma: no cover - owned implies expected
            self.add(idx, 'corrupt', 'unexpected content', expected)
            return
        if rec.gen < egen:
            self.add(idx, 'stale', 'gen %d, last acknowledged gen %d '
                     '(seq %d)' % (rec.gen, egen, lost), expected, lost)
        elif rec.gen > egen:
            self.add(idx, 'ahead', 'gen %d, last acknowledged gen %d'
                     % (rec.gen, egen), expected)
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
        self.run = hist.run if hist is not None else None
        self.last_seq = hist.last_seq if hist is not None else -1
        res = self.res
        res.layout = layout.to_dict()
        res.acked_writes = self.last_seq + 1
        bs = blocks.BLOCK_SIZE
        total = layout.total_blocks
        res.checked_blocks = total
        res.trailing_bytes = max(0, self.size - total * bs)

        # the write in flight, if any
        self.inflight_block = None
        if hist is not None and hist.done is None:
            seq = self.last_seq + 1
            self.inflight_block = layout.seq_block(seq)
            gen = layout.seq_gen(seq)
            self.inflight_new = self.block_for(self.inflight_block, gen)
            res.inflight = {'seq': seq, 'block': self.inflight_block,
                            'gen': gen, 'state': 'old'}

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
        self.compare_range(layout.work_first, layout.work_count,
                           self.expected_work)
        return self.finish()

    def finish(self):
        res = self.res
        res.findings.sort(key=lambda f: f.offset)
        for f in res.findings:
            setattr(res, f.kind + '_blocks',
                    getattr(res, f.kind + '_blocks') + 1)
            if f.lost_seq is not None:
                res.lost_writes += 1
        res.intact_blocks = res.checked_blocks - len(res.findings)
        counts = ('lost writes %d; stale %d, corrupt %d, misplaced %d, '
                  'ahead %d of %d blocks; %d acknowledged writes' % (
                      res.lost_writes, res.stale_blocks, res.corrupt_blocks,
                      res.misplaced_blocks, res.ahead_blocks,
                      res.checked_blocks, res.acked_writes))
        extra = ''
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
        elif res.ahead_blocks or untolerated:
            res.verdict = ERROR
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


def check(history, image, tolerate=()):
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

    Pure: reads its arguments, returns a Result.
    """
    if isinstance(history, (str, bytes, list, tuple)):
        history = history_mod.parse(history)
    return _Checker(history, image, tolerate).run_check()


def main(argv=None):
    p = argparse.ArgumentParser(
        prog='python -m migration_tempest_plugin.integrity.checker',
        description='Check a raw disk image against guest console logs.')
    p.add_argument('image', help='raw disk image')
    p.add_argument('consoles', nargs='*',
                   help='console logs in order (source, then destination)')
    args = p.parse_args(argv)
    texts = []
    for path in args.consoles:
        with open(path, 'rb') as f:
            texts.append(f.read())
    hist = history_mod.parse(texts) if texts else None
    with open(args.image, 'rb') as f:
        if os.fstat(f.fileno()).st_size:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        else:
            data = b''
        res = check(hist, data)
    print(json.dumps(res.to_dict(), indent=2, default=str))
    return {INTACT: 0, DATA_LOSS: 1}.get(res.verdict, 2)


if __name__ == '__main__':
    sys.exit(main())
