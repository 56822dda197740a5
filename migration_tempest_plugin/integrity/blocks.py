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

"""Disk layout and self-describing block format of the integrity oracle.

Everything here is pure (no I/O) except :func:`write_base_image`.

Block format
------------
A block is 4096 bytes: one 64-byte *record* repeated 64 times::

    MTP1 <run> <idx:08d> <gen:08d> <sum:08x> ......................\\n

``run`` is 8 lowercase hex digits (the image id for pre-filled blocks, the
workload's run id for blocks it wrote), ``idx`` the block's own index on the
disk, ``gen`` the write generation (0 = written when the image was built) and
``sum = (int(run, 16) ^ idx * 2654435761 ^ gen * 2246822519) & 0xffffffff``.
The record is padded with dots to 63 characters and ends with a newline, so
a 512-byte sector holds exactly eight whole records.

Disk layout
-----------
Block 0 is the *label*: one 128-byte line (shown wrapped) repeated 32 times::

    MTPDISK1 image=<8hex> bs=4096 static=<first>+<count>
        work=<first>+<count> step=<step> ....\\n

It is followed by the *static* region (pre-filled, never written by the
workload) and the *work* region (pre-filled, rewritten by the workload).
Write number ``seq`` (0, 1, 2, ...) of the workload goes to block
``work_first + (seq * step) % work_count`` with generation
``seq // work_count + 1``; ``step`` must be coprime with ``work_count`` so
that the sequence visits every work block once per generation.

A label may end with ``zero=<k>`` (k > 0): then every k-th write
(``seq % k == k - 1``) empties its block instead of writing a record, the
first of those, the third, and so on by writing zeros, the others by
discarding the block (see :meth:`Layout.op`).  After a zeroing the block
must read as zeros; after a discard, as zeros or as what it held before,
for a discard is only a hint to the disk.  Nothing older may come back.
"""

import collections
import os
import re

from migration_tempest_plugin import errors

BLOCK_SIZE = 4096
# Writes the guest acknowledges before a migration starts, and after it
# (where it then runs), so that both hosts wrote what the checker reads:
# the same numbers for the tempest tests and the lab.
ACKS_BEFORE_MIGRATION = 40
ACKS_AFTER_MIGRATION = 20
RECORD_SIZE = 64
COPIES = BLOCK_SIZE // RECORD_SIZE
SECTOR_SIZE = 512
LABEL_LINE_SIZE = 128
LABEL_COPIES = BLOCK_SIZE // LABEL_LINE_SIZE

MAGIC = 'MTP1'
LABEL_MAGIC = 'MTPDISK1'
HASH_IDX = 2654435761
HASH_GEN = 2246822519
MASK32 = 0xffffffff
DEFAULT_STEP = 1000003

# 1 label block + 8191 static + 8192 work blocks = 16384 blocks = 64 MiB.
DEFAULT_STATIC_BLOCKS = 8191
DEFAULT_WORK_BLOCKS = 8192

MAX_FIELD = 99999999  # idx and gen are printed with 8 decimal digits

_RECORD_HEAD = 41  # len('MTP1 xxxxxxxx 00000000 00000000 xxxxxxxx ')
_DOTS = '.' * (RECORD_SIZE - 1 - _RECORD_HEAD)
_RECORD_FMT = 'MTP1 %s %08d %08d %08x ' + _DOTS + '\n'
_RECORD_RE = re.compile(
    rb'MTP1 ([0-9a-f]{8}) ([0-9]{8}) ([0-9]{8}) ([0-9a-f]{8}) '
    rb'\.{%d}\n\Z' % len(_DOTS))
_HEX8_RE = re.compile(r'[0-9a-f]{8}\Z')
_LABEL_RE = re.compile(
    rb'MTPDISK1 image=([0-9a-f]{8}) bs=([0-9]+) static=([0-9]+)\+([0-9]+) '
    rb'work=([0-9]+)\+([0-9]+) step=([0-9]+) (?:zero=([0-9]+) )?\.*\n\Z')

Record = collections.namedtuple('Record', 'run idx gen sum')

ZERO_BLOCK = bytes(BLOCK_SIZE)
WRITE, ZERO, DISCARD = 'write', 'zero', 'discard'


class LayoutError(errors.Error, ValueError):
    """A layout that the workload cannot use."""


def check_run_id(run):
    """Return *run* if it is 8 lowercase hex digits, else raise ValueError."""
    if not isinstance(run, str) or not _HEX8_RE.match(run):
        raise ValueError('run/image id must be 8 lowercase hex digits: %r'
                         % (run,))
    return run


def record_sum(run, idx, gen):
    """Checksum of a record header; *run* is the 8-hex string or an int."""
    if isinstance(run, str):
        run = int(run, 16)
    return (run ^ (idx * HASH_IDX) ^ (gen * HASH_GEN)) & MASK32


def record_text(run, idx, gen):
    """The 64-character record as a str."""
    return _RECORD_FMT % (run, idx, gen, record_sum(run, idx, gen))


def make_record(run, idx, gen):
    """The 64-byte record for block *idx* at generation *gen*."""
    return record_text(run, idx, gen).encode('ascii')


def make_block(run, idx, gen):
    """The full 4096-byte block."""
    return make_record(run, idx, gen) * COPIES


def render_blocks(run, first, count, gen):
    """Bytes of *count* consecutive blocks from *first*, all at *gen*.

    This is the bulk builder used for pre-filled regions: one formatting
    operation per block, one encode for the lot.
    """
    runi = int(run, 16)
    gterm = gen * HASH_GEN
    fmt = _RECORD_FMT
    parts = [(fmt % (run, i, gen, (runi ^ (i * HASH_IDX) ^ gterm) & MASK32))
             * COPIES for i in range(first, first + count)]
    return ''.join(parts).encode('ascii')


def parse_record(data):
    """Parse one 64-byte record; return a Record or None if malformed.

    A record whose checksum does not match is returned with ``sum`` set to
    the value read; use :func:`record_ok` to validate it.
    """
    m = _RECORD_RE.match(bytes(data))
    if not m:
        return None
    return Record(m.group(1).decode(), int(m.group(2)), int(m.group(3)),
                  int(m.group(4), 16))


def record_ok(rec):
    return rec is not None and rec.sum == record_sum(rec.run, rec.idx,
                                                     rec.gen)


class BlockInfo(collections.namedtuple(
        'BlockInfo', 'record consistent reason')):
    """What a block holds.

    ``record`` is the Record of the block when all 64 copies agree and the
    record parses with a valid checksum, else None; ``consistent`` tells
    whether the 64 copies are byte-identical; ``reason`` is None for a
    good block, else a short text.
    """

    @property
    def ok(self):
        return self.record is not None


def inspect_block(data):
    """Decode a 4096-byte block into a BlockInfo."""
    data = bytes(data)
    if len(data) != BLOCK_SIZE:
        return BlockInfo(None, False, 'short block (%d bytes)' % len(data))
    first = data[:RECORD_SIZE]
    consistent = data == first * COPIES
    if not consistent:
        return BlockInfo(None, False, _describe_inconsistent(data))
    if first == b'\0' * RECORD_SIZE:
        return BlockInfo(None, True, 'zeroed')
    rec = parse_record(first)
    if rec is None:
        return BlockInfo(None, True, 'unparseable record')
    if not record_ok(rec):
        return BlockInfo(None, True, 'checksum mismatch in %s/%d/%d' % (
            rec.run, rec.idx, rec.gen))
    return BlockInfo(rec, True, None)


def _describe_inconsistent(data):
    """Describe a block whose copies disagree (torn, mixed or flipped)."""
    records = {}
    bad = 0
    for s in range(0, BLOCK_SIZE, SECTOR_SIZE):
        sector = data[s:s + SECTOR_SIZE]
        first = sector[:RECORD_SIZE]
        rec = parse_record(first) if sector == first * (
            SECTOR_SIZE // RECORD_SIZE) else None
        if rec is not None and record_ok(rec):
            records.setdefault((rec.run, rec.idx, rec.gen), 0)
            records[(rec.run, rec.idx, rec.gen)] += 1
        else:
            bad += 1
    if bad == 0 and len(records) > 1:
        return 'torn: sectors of %s' % ', '.join(
            '%s/%d/%d x%d' % (k + (v,)) for k, v in sorted(records.items()))
    return 'copies disagree (%d of 8 sectors damaged)' % bad


def sector_mix(data, old, new):
    """Classify *data* against two candidate blocks, sector by sector.

    Returns 'old', 'new', 'mixed' (every 512-byte sector equals the
    corresponding sector of *old* or of *new*, with both present) or None.
    """
    data = bytes(data)
    if data == old:
        return 'old'
    if data == new:
        return 'new'
    if len(data) != BLOCK_SIZE:
        return None
    for s in range(0, BLOCK_SIZE, SECTOR_SIZE):
        e = s + SECTOR_SIZE
        piece = data[s:e]
        if piece != old[s:e] and piece != new[s:e]:
            return None
    return 'mixed'


class Layout(collections.namedtuple(
        'Layout', 'image_id static_first static_count work_first work_count '
                  'step zero_every', defaults=(0,))):
    """Where the label, static and work regions are, in blocks, and how
    often a write empties its block instead (0: never)."""

    @property
    def total_blocks(self):
        return max(1, self.static_first + self.static_count,
                   self.work_first + self.work_count)

    @property
    def size_bytes(self):
        return self.total_blocks * BLOCK_SIZE

    def region(self, idx):
        """'label', 'static', 'work' or None for a block index."""
        if idx == 0:
            return 'label'
        if self.static_first <= idx < self.static_first + self.static_count:
            return 'static'
        if self.work_first <= idx < self.work_first + self.work_count:
            return 'work'
        return None

    def seq_block(self, seq):
        """Block index written by workload write number *seq*."""
        return self.work_first + (seq * self.step) % self.work_count

    def seq_gen(self, seq):
        """Generation written by workload write number *seq*."""
        return seq // self.work_count + 1

    def first_seq(self, idx):
        """The first seq that writes work block *idx* (0 <= r < count)."""
        inv = pow(self.step, -1, self.work_count)
        return ((idx - self.work_first) * inv) % self.work_count

    def seq_of(self, idx, gen):
        """The seq that writes generation *gen* (>= 1) of work block
        *idx*."""
        return self.first_seq(idx) + (gen - 1) * self.work_count

    def op(self, seq):
        """What write *seq* does to its block: WRITE its record, or empty
        it, by writing zeros (ZERO) or by discarding it (DISCARD)."""
        k = self.zero_every
        if not k or seq % k != k - 1:
            return WRITE
        return ZERO if (seq // k) % 2 == 0 else DISCARD

    def expected_gen(self, idx, last_seq):
        """Generation of work block *idx* after writes 0..last_seq."""
        r = self.first_seq(idx)
        if r > last_seq:
            return 0
        return (last_seq - r) // self.work_count + 1

    def validate(self):
        """Raise LayoutError unless the layout is usable; return self."""
        check_run_id(self.image_id)
        if self.static_count < 0 or self.work_count < 1:
            raise LayoutError('work region must have at least one block')
        if self.static_first != 1:
            raise LayoutError('static region must start at block 1')
        if self.work_first != self.static_first + self.static_count:
            raise LayoutError('work region must follow the static region')
        if self.total_blocks - 1 > MAX_FIELD:
            raise LayoutError('too many blocks for 8-digit indices')
        if self.step < 1:
            raise LayoutError('step must be positive')
        if self.zero_every < 0:
            raise LayoutError('zero_every must not be negative')
        if _gcd(self.step, self.work_count) != 1:
            raise LayoutError('step %d is not coprime with work count %d'
                              % (self.step, self.work_count))
        return self

    def to_dict(self):
        return dict(self._asdict())


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def make_layout(static_blocks=DEFAULT_STATIC_BLOCKS,
                work_blocks=DEFAULT_WORK_BLOCKS, image_id=None,
                step=DEFAULT_STEP, zero_every=0):
    """Build and validate a Layout; a random image id if none is given."""
    if image_id is None:
        image_id = new_id()
    return Layout(image_id, 1, static_blocks, 1 + static_blocks, work_blocks,
                  step, zero_every).validate()


def new_id():
    """A random 8-hex id."""
    return os.urandom(4).hex()


def label_line(layout):
    head = ('%s image=%s bs=%d static=%d+%d work=%d+%d step=%d ' % (
        LABEL_MAGIC, layout.image_id, BLOCK_SIZE, layout.static_first,
        layout.static_count, layout.work_first, layout.work_count,
        layout.step))
    if layout.zero_every:
        head += 'zero=%d ' % layout.zero_every
    if len(head) > LABEL_LINE_SIZE - 1:
        raise LayoutError('label line too long')
    return (head + '.' * (LABEL_LINE_SIZE - 1 - len(head)) + '\n').encode()


def label_block(layout):
    """The 4096-byte label block for *layout*."""
    return label_line(layout) * LABEL_COPIES


def parse_label_line(line):
    """Parse one 128-byte label line; return a Layout or None."""
    m = _LABEL_RE.match(bytes(line))
    if not m or int(m.group(2)) != BLOCK_SIZE:
        return None
    layout = Layout(m.group(1).decode(), int(m.group(3)), int(m.group(4)),
                    int(m.group(5)), int(m.group(6)), int(m.group(7)),
                    int(m.group(8) or 0))
    try:
        layout.validate()
    except (LayoutError, ValueError):
        return None
    if label_line(layout) != bytes(line):
        return None  # not canonical
    return layout


def parse_label(block):
    """Read the layout from a label block.

    Returns ``(layout, intact)``: *layout* is the layout named by most of the
    32 label lines (None when no line is a valid label), *intact* is True
    when the block is exactly the canonical label of that layout.
    """
    block = bytes(block)
    if len(block) >= LABEL_LINE_SIZE:
        first = parse_label_line(block[:LABEL_LINE_SIZE])
        if first is not None and block[:BLOCK_SIZE] == label_block(first):
            return first, True
    votes = collections.Counter()
    for off in range(0, min(len(block), BLOCK_SIZE) - LABEL_LINE_SIZE + 1,
                     LABEL_LINE_SIZE):
        layout = parse_label_line(block[off:off + LABEL_LINE_SIZE])
        if layout is not None:
            votes[layout] += 1
    if not votes:
        return None, False
    return votes.most_common(1)[0][0], False


def iter_base_image(layout, chunk_blocks=256):
    """Yield the bytes of the pristine image for *layout*, chunk by chunk."""
    yield label_block(layout)
    for region_first, region_count in ((layout.static_first,
                                        layout.static_count),
                                       (layout.work_first,
                                        layout.work_count)):
        end = region_first + region_count
        for first in range(region_first, end, chunk_blocks):
            yield render_blocks(layout.image_id, first,
                                min(chunk_blocks, end - first), 0)


def write_base_image(path, static_blocks=DEFAULT_STATIC_BLOCKS,
                     work_blocks=DEFAULT_WORK_BLOCKS, image_id=None,
                     zero_every=0):
    """Write the pristine raw image to *path*; return its Layout.

    The file is written next to *path* and renamed into place, so a reader
    never sees a half-written image.
    """
    layout = make_layout(static_blocks, work_blocks, image_id,
                         zero_every=zero_every)
    tmp = '%s.tmp-%d' % (path, os.getpid())
    try:
        with open(tmp, 'wb') as f:
            for chunk in iter_base_image(layout):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return layout
