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

"""Parse the guest console into a History of acknowledged writes (pure).

The workload (agent.sh) prints these lines; a line may carry kernel noise
before the ``MTP`` tag, so records are searched anywhere in a line, but from
the tag to the end of the line the record must match exactly::

    MTP RUN <run> image=<8hex> static=<f>+<n> work=<f>+<n> step=<n>
        [zero=<k>]                           (one line)
    MTP ACK <seq> <idx> <gen> <sum:08x>     write number seq is durable
    MTP ERR <seq> <idx> <gen> rc=<n>         dd failed; the write is retried
    MTP NOTE <text>                          informational
    MTP DONE <count>                         the workload stopped by itself
    MTP FATAL <text>                         the workload refused to run

Because the workload is sequential (it starts write seq+1 only after write
seq was acknowledged), each ACK is fully determined by its seq and the RUN
line: idx, gen and sum are recomputed and any difference is a problem.
With ``zero=<k>`` some writes empty their block instead (blocks.Layout.op);
their ACK lines look the same, the sum being that of the record the seq
names.

Parsing is one pass of one compiled regex over the joined text.  A console
is mostly ACKs in order, so each ACK is first compared with the record the
next write must print (one string comparison); only a record that differs
takes the full path, which parses and judges it.  Locations (console and
line) are computed when a problem needs one, and for the ACKs only when
``History.acks`` is read.
"""

import bisect
import collections
import itertools
import re

from migration_tempest_plugin.integrity import blocks

# The first tag of a line and the rest of that line.
_RECORD_RE = re.compile(r'MTP (RUN|ACK|ERR|NOTE|DONE|FATAL)\b[^\n]*')
_RUN_RE = re.compile(
    r'MTP RUN ([0-9a-f]{8}) image=([0-9a-f]{8}) static=(\d+)\+(\d+) '
    r'work=(\d+)\+(\d+) step=(\d+)(?: zero=(\d+))?\Z')
_ACK_RE = re.compile(r'MTP ACK (\d+) (\d+) (\d+) ([0-9a-f]{8})\Z')
_ERR_RE = re.compile(r'MTP ERR (\d+) (\d+) (\d+) rc=(\d+)\Z')
_NOTE_RE = re.compile(r'MTP NOTE (.*)\Z')
_DONE_RE = re.compile(r'MTP DONE (\d+)\Z')
_FATAL_RE = re.compile(r'MTP FATAL (.*)\Z')
_ACK_FMT = 'MTP ACK %d %d %d %08x'

Ack = collections.namedtuple('Ack', 'seq idx gen sum source line')
WriteError = collections.namedtuple('WriteError', 'seq idx gen rc source line')

# Problems that make any verdict on this history meaningless.
FATAL_KINDS = frozenset(['no-run', 'second-run', 'fatal', 'bad-run'])


class Problem(collections.namedtuple('Problem',
                                     'kind source line text detail')):
    """Something wrong with the console text, located by source and line.

    kinds: ``gap`` (acks missing), ``order`` (seq went backwards),
    ``malformed`` (a record that does not parse), ``bad-sum`` (idx/gen/sum
    not those of its seq, which is also what an ACK repeating a seq with
    other content is), ``no-run`` (no RUN line, or ACKs before it: one
    problem), ``second-run``, ``bad-run`` (RUN line with an unusable
    layout), ``fatal`` (the workload refused to run).  Warnings use
    ``partial-tail`` and ``duplicate``.
    """

    @property
    def fatal(self):
        return self.kind in FATAL_KINDS

    def where(self):
        return 'console %d line %d' % (self.source, self.line)

    def to_dict(self):
        d = dict(self._asdict())
        d['where'] = self.where()
        return d

    def __str__(self):
        return '%s at %s: %s' % (self.kind, self.where(), self.detail)


class History(object):
    """What the guest acknowledged.

    ``run`` and ``layout`` come from the RUN line; ``acks`` are the valid
    ACK lines in order (duplicates removed); ``problems`` make the history
    untrustworthy; ``warnings`` do not; ``write_errors`` are ERR lines;
    ``notes`` are NOTE texts; ``done`` is the count of a DONE line or None.
    """

    def __init__(self):
        self.run = None
        self.layout = None
        self.run_location = None
        self.problems = []
        self.warnings = []
        self.write_errors = []
        self.notes = []
        self.done = None
        # the valid ACKs, as seqs and offsets in the joined text: an Ack
        # each is built only if someone reads ``acks``
        self._ack_seqs = []
        self._ack_offsets = []
        self._locator = None
        self._acks = None

    @property
    def acks(self):
        """The valid ACKs in order, as Ack tuples (built on first use)."""
        if self._acks is None:
            where = self._locator.restart() if self._locator else None
            self._acks = [self._ack(seq, where(at)) for seq, at in
                          zip(self._ack_seqs, self._ack_offsets)]
        return self._acks

    def _ack(self, seq, location):
        idx, gen = self.layout.seq_block(seq), self.layout.seq_gen(seq)
        return Ack(seq, idx, gen, blocks.record_sum(self.run, idx, gen),
                   *location)

    @property
    def last_seq(self):
        """Highest acknowledged seq, -1 when nothing was acknowledged.

        The workload is sequential, so every seq up to this one was
        written, even when some of their ACK lines are missing.
        """
        return self._ack_seqs[-1] if self._ack_seqs else -1

    @property
    def acked_writes(self):
        return self.last_seq + 1

    @property
    def fatal_problems(self):
        return [p for p in self.problems if p.fatal]

    @property
    def ok(self):
        return not self.problems

    def to_dict(self):
        return {
            'run': self.run,
            'layout': self.layout.to_dict() if self.layout else None,
            'acks': len(self._ack_seqs),
            'last_seq': self.last_seq,
            'done': self.done,
            'problems': [p.to_dict() for p in self.problems],
            'warnings': [p.to_dict() for p in self.warnings],
            'write_errors': [dict(e._asdict()) for e in self.write_errors],
            'notes': list(self.notes),
        }


class _Locator(object):
    """(source, line) of offsets in the joined texts, in ascending order.

    A line is located where it starts: the texts are joined without a
    separator (after a migration the source's console may end in the
    middle of a line that the destination's finishes).  Each call counts
    the newlines since the previous one, so a pass costs the text's length.
    """

    def __init__(self, text, starts):
        self.text = text
        self.starts = starts        # offset of each source in text
        self.restart()

    def restart(self):
        self.src, self.pos, self.line = 0, 0, 1
        return self

    def __call__(self, offset):
        text = self.text
        start = text.rfind('\n', 0, offset) + 1
        # the last source that starts there: empty sources hold no line
        src = bisect.bisect_right(self.starts, start) - 1
        if src == self.src and start >= self.pos:
            line = self.line + text.count('\n', self.pos, start)
        else:
            line = text.count('\n', self.starts[src], start) + 1
        self.src, self.pos, self.line = src, start, line
        return src, line


def ack_count(text):
    """How many ACK records a console text holds, without parsing them:
    a waiter's cheap measure of progress (parse() judges them)."""
    return text.count('MTP ACK ')


def fatal_line(text):
    """The workload's ``MTP FATAL`` record in a console text, or None."""
    at = text.find('MTP FATAL')
    return text[at:].splitlines()[0] if at >= 0 else None


def parse(text):
    """Parse console text (a str, bytes, or a list of them) to a History."""
    texts = [text] if isinstance(text, (str, bytes)) else list(text)
    return _Parser([t.decode('utf-8', 'replace') if isinstance(t, bytes)
                    else t for t in texts]).parse()


def _expected_acks(layout, run, seq):
    """The ACK records of writes seq, seq+1, ... as the workload prints
    them (from the tag, without the line end)."""
    wf, wc, step = layout.work_first, layout.work_count, layout.step
    runi = int(run, 16)
    hi, hg, mask = blocks.HASH_IDX, blocks.HASH_GEN, blocks.MASK32
    while True:
        idx = wf + (seq * step) % wc
        gen = seq // wc + 1
        yield _ACK_FMT % (seq, idx, gen, (runi ^ idx * hi ^ gen * hg) & mask)
        seq += 1


class _Parser(object):
    """One pass over the joined texts, building a History."""

    def __init__(self, texts):
        self.text = ''.join(texts)
        starts = [0]
        for t in texts[:-1]:
            starts.append(starts[-1] + len(t))
        self.h = History()
        self.where = self.h._locator = _Locator(self.text, starts)
        # ACKs before any RUN line make one problem, with their count: one
        # problem per ACK would make a report as long as the console
        self.orphans, self.orphan_at = 0, None

    def parse(self):
        h = self.h
        seqs, offsets = h._ack_seqs, h._ack_offsets
        end = len(self.text)
        seq, acks = self.next_acks()
        expected = next(acks)
        for m in _RECORD_RE.finditer(self.text):
            # the next write's ACK, as printed: nothing to judge (the
            # common case, kept to a string comparison and two appends)
            if m[0].rstrip() == expected:
                seqs.append(seq)
                offsets.append(m.start())
                seq += 1
                expected = next(acks)
                continue
            self.record(m[1], m[0].rstrip(), m.start(), m.end() < end)
            seq, acks = self.next_acks()
            expected = next(acks)
        self.finish()
        return h

    def next_acks(self):
        """(next seq, iterator over the ACK records from it on)."""
        h = self.h
        seq = h.last_seq + 1
        if h.layout is None:
            return seq, itertools.repeat(None)
        return seq, _expected_acks(h.layout, h.run, seq)

    def record(self, kind, rec, at, terminated):
        """Judge one record, in full: *at* is its offset in the text,
        *terminated* whether a newline ends its line."""
        getattr(self, '_' + kind.lower())(rec, at, terminated)

    def problem(self, kind, at, rec, detail, warning=False):
        found = Problem(kind, *self.where(at), text=rec, detail=detail)
        (self.h.warnings if warning else self.h.problems).append(found)

    def partial(self, at, rec):
        self.problem('partial-tail', at, rec, 'console ends inside a record',
                     warning=True)

    def _ack(self, rec, at, terminated):
        h = self.h
        m = _ACK_RE.match(rec)
        if not m:
            if terminated:
                self.problem('malformed', at, rec, 'unparseable ACK record')
            else:
                self.partial(at, rec)
            return
        seq, idx, gen = (int(m.group(i)) for i in (1, 2, 3))
        if h.layout is None:
            if not self.orphans:
                self.orphan_at = len(h.problems)
                self.problem('no-run', at, rec, 'ACK before any RUN line')
            self.orphans += 1
            return
        want = (h.layout.seq_block(seq), h.layout.seq_gen(seq))
        want_sum = blocks.record_sum(h.run, *want)
        if (idx, gen) != want or int(m.group(4), 16) != want_sum:
            self.problem('bad-sum', at, rec, 'seq %d must be idx %d gen %d '
                         'sum %08x' % ((seq,) + want + (want_sum,)))
            return
        last = h.last_seq
        if seq <= last:
            # its content is that of its seq (checked above), so an
            # acknowledged seq again is a repeated line
            i = bisect.bisect_left(h._ack_seqs, seq)
            if h._ack_seqs[i] == seq:
                self.problem('duplicate', at, rec, 'seq %d repeated' % seq,
                             warning=True)
            else:
                self.problem('order', at, rec,
                             'seq %d after seq %d' % (seq, last))
            return
        if seq > last + 1:
            self.problem('gap', at, rec, 'acks for seq %d..%d missing'
                         % (last + 1, seq - 1))
        h._ack_seqs.append(seq)
        h._ack_offsets.append(at)

    def _run(self, rec, at, terminated):
        h = self.h
        m = _RUN_RE.match(rec)
        if not m:
            if terminated:
                self.problem('malformed', at, rec, 'unparseable RUN record')
            else:
                self.partial(at, rec)
            return
        run = m.group(1)
        layout = blocks.Layout(m.group(2), *(int(m.group(i))
                                             for i in range(3, 8)),
                               int(m.group(8) or 0))
        if h.run is not None:
            if (run, layout) == (h.run, h.layout):
                self.problem('duplicate', at, rec, 'RUN line repeated',
                             warning=True)
            else:
                self.problem('second-run', at, rec, 'run %s after run %s '
                             '(first at console %d line %d)'
                             % ((run, h.run) + h.run_location))
            return
        try:
            layout.validate()
        except ValueError as e:
            self.problem('bad-run', at, rec, 'unusable layout: %s' % e)
            return
        h.run, h.layout, h.run_location = run, layout, self.where(at)

    def _err(self, rec, at, terminated):
        m = _ERR_RE.match(rec)
        if m:
            self.h.write_errors.append(WriteError(
                *(int(m.group(i)) for i in (1, 2, 3, 4)), *self.where(at)))
        elif terminated:
            self.problem('malformed', at, rec, 'unparseable ERR record')

    def _done(self, rec, at, terminated):
        h = self.h
        m = _DONE_RE.match(rec)
        if not terminated:
            # the count may be cut ("MTP DONE 1" of "MTP DONE 100"): the
            # capture ended, no record is lost, no write is known to be
            # the last
            self.partial(at, rec)
        elif m:
            h.done = int(m.group(1))
            if h.done != h.last_seq + 1:
                self.problem('gap', at, rec, 'DONE %d but last ack is seq %d'
                             % (h.done, h.last_seq))
        else:
            self.problem('malformed', at, rec, 'unparseable DONE record')

    def _fatal(self, rec, at, terminated):
        m = _FATAL_RE.match(rec)
        self.problem('fatal', at, rec, m.group(1) if m else rec)

    def _note(self, rec, at, terminated):
        m = _NOTE_RE.match(rec)
        self.h.notes.append(m.group(1) if m else rec)

    def finish(self):
        h = self.h
        if self.orphans > 1:
            h.problems[self.orphan_at] = h.problems[self.orphan_at]._replace(
                detail='%d ACKs before any RUN line' % self.orphans)
        if h.run is None and not any(p.kind == 'no-run' for p in h.problems):
            h.problems.append(Problem('no-run', 0, 0, '',
                                      'no RUN line in the console'))


def render(layout, run, count, done=False, noise=True):
    """Console text the workload would print for *count* writes.

    A helper for tests and benchmarks; *noise* adds kernel-like lines.
    """
    out = []
    if noise:
        out.append('[    0.000000] Linux version 6.1.0 (fake)\r\n')
    out.append('MTP RUN %s image=%s static=%d+%d work=%d+%d step=%d%s\r\n'
               % (run, layout.image_id, layout.static_first,
                  layout.static_count, layout.work_first, layout.work_count,
                  layout.step, (' zero=%d' % layout.zero_every
                                if layout.zero_every else '')))
    for seq in range(count):
        idx, gen = layout.seq_block(seq), layout.seq_gen(seq)
        out.append('MTP ACK %d %d %d %08x\r\n' % (
            seq, idx, gen, blocks.record_sum(run, idx, gen)))
    if done:
        out.append('MTP DONE %d\r\n' % count)
    return ''.join(out)
