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

A second agent, on a second disk, prints the same records with a tag after
``MTP`` (``MTP.vdb ACK 3 ...``); ``parse(texts, tag='vdb')`` reads only
those, ``parse(texts)`` only the untagged ones.

Each RUN line starts a *run*: one boot of the guest, whose seqs start at 0
with a fresh run id.  A history holds its runs in the order the texts give
them (``History.runs``); they must all describe the same disk.

Because the workload is sequential (it starts write seq+1 only after write
seq was acknowledged), each ACK is fully determined by its seq and the RUN
line: idx, gen and sum are recomputed and any difference is a problem.
With ``zero=<k>`` some writes empty their block instead (blocks.Layout.op);
their ACK lines look the same, the sum being that of the record the seq
names.

The tail of a run gets a second look: ACK-shaped records after its last
counted ACK (a cut last line, a damaged one, an old line repeated after
higher ones), NUL bytes there, or a DONE count above it are *evidence* that
the guest acknowledged more than the counted ACKs show (``Run.evidence``,
``Run.proven_seq``, ``Run.claimed_seq``; doc/source/oracle.rst).

Parsing is one pass of one compiled regex over the joined text.  A console
is mostly ACKs in order, so each ACK is first compared with the record the
next write must print (one string comparison); only a record that differs
takes the full path, which parses and judges it.  Locations (console and
line) are computed when a problem needs one, and for the ACKs only when
``acks`` is read.
"""

import bisect
import collections
import itertools
import re

from migration_tempest_plugin.integrity import blocks

_TAG_RE = re.compile(r'[a-z0-9]+\Z')

Ack = collections.namedtuple('Ack', 'seq idx gen sum source line run',
                             defaults=(None,))
WriteError = collections.namedtuple('WriteError',
                                    'seq idx gen rc source line run',
                                    defaults=(None,))
# A sign, after a run's last counted ACK, that the guest acknowledged more:
# kind is the ACK-shaped record's problem or warning kind ('malformed',
# 'bad-sum', 'order', 'duplicate', 'partial-tail'), 'nul' (NUL bytes) or
# 'done' (a DONE count above the counted ACKs).
Evidence = collections.namedtuple('Evidence', 'kind source line text')

# Problems that make any verdict on this history meaningless.
FATAL_KINDS = frozenset(['no-run', 'fatal', 'bad-run', 'other-disk',
                         'run-again', 'unknown-run'])
# Records whose tag says ACK but which were not counted: after a run's last
# counted ACK, each is a sign of a later ACK.
_ACK_SHAPED = frozenset(['malformed', 'bad-sum', 'order', 'duplicate',
                         'partial-tail'])


class _Grammar(object):
    """The record regexes of one agent: untagged (``MTP``) or tagged
    (``MTP.<tag>``)."""

    def __init__(self, tag):
        if tag is not None and not (isinstance(tag, str) and
                                    _TAG_RE.match(tag)):
            raise ValueError('tag must match [a-z0-9]+: %r' % (tag,))
        self.head = head = 'MTP' if tag is None else 'MTP.' + tag
        h = re.escape(head)
        # the first tag of a line and the rest of that line
        self.record = re.compile(
            h + r' (RUN|ACK|ERR|NOTE|DONE|FATAL)\b[^\n]*')
        self.run = re.compile(
            h + r' RUN ([0-9a-f]{8}) image=([0-9a-f]{8}) static=(\d+)\+(\d+) '
            r'work=(\d+)\+(\d+) step=(\d+)(?: zero=(\d+))?\Z')
        self.ack = re.compile(h + r' ACK (\d+) (\d+) (\d+) ([0-9a-f]{8})\Z')
        self.err = re.compile(h + r' ERR (\d+) (\d+) (\d+) rc=(\d+)\Z')
        self.note = re.compile(h + r' NOTE (.*)\Z')
        self.done = re.compile(h + r' DONE (\d+)\Z')
        self.fatal = re.compile(h + r' FATAL (.*)\Z')
        self.ack_fmt = head + ' ACK %d %d %d %08x'
        # the shortest text that only the start of an ACK record begins
        # with (no other record starts "MTP A")
        self.ack_start = head + ' A'


_GRAMMARS = {}


def _grammar(tag):
    g = _GRAMMARS.get(tag)
    if g is None:
        g = _GRAMMARS[tag] = _Grammar(tag)
    return g


class Problem(collections.namedtuple('Problem',
                                     'kind source line text detail')):
    """Something wrong with the console text, located by source and line.

    kinds: ``gap`` (acks missing), ``order`` (seq went backwards),
    ``malformed`` (a record that does not parse), ``bad-sum`` (idx/gen/sum
    not those of its seq, which is also what an ACK repeating a seq with
    other content is), ``no-run`` (no RUN line, or ACKs before it: one
    problem), ``bad-run`` (RUN line with an unusable layout),
    ``other-disk`` (a RUN line whose image or layout is not the first
    run's), ``run-again`` (the RUN line of an earlier run after another
    run), ``unknown-run`` (ACKs of a run whose RUN line is missing),
    ``fatal`` (the workload refused to run).  Warnings use
    ``partial-tail``, ``duplicate``, ``nul`` and ``cut-at-switch`` (an ACK
    whose end a live migration's console switch lost, counted).
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


class Run(object):
    """One run of the workload (one boot), from its RUN line to the next.

    ``run`` and ``layout`` come from its RUN line, ``location`` is where
    that line is (console, line) and ``sources`` the first and last console
    its records span; ``acks`` are its valid ACK lines in order
    (``acked_seqs`` their seqs), ``last_ack`` the last of them; ``done`` is
    the count of its DONE line or None (``done_seen``).

    ``evidence`` lists the signs, after its last counted ACK, that the
    guest acknowledged more: ``proven_seq`` is the highest seq known
    acknowledged (``last_seq``, or the next one when the run ends in the cut
    start of exactly that ACK), ``claimed_seq`` the highest seq the evidence
    may stand for (as many ACKs as each damaged line may hide, or up to a
    DONE count).  Both equal ``last_seq`` without evidence.
    """

    def __init__(self, run, layout, start, location, locator):
        self.run = run
        self.layout = layout
        self.location = location
        self.start = start          # offsets of its span in the joined text
        self.end = None
        self.done = None
        self.last_location = location   # where its last record is
        self.evidence = []
        self.proven_seq = self.claimed_seq = -1
        self._ack_seqs = []
        self._ack_offsets = []
        self._raw_evidence = []     # (kind, offset, record text)
        self._done_at = None
        self._locator = locator
        self._acks = None

    @property
    def acks(self):
        """The valid ACKs in order, as Ack tuples (built on first use)."""
        if self._acks is None:
            where = self._locator.restart()
            self._acks = [self._ack(seq, where(at)) for seq, at in
                          zip(self._ack_seqs, self._ack_offsets)]
        return self._acks

    def _ack(self, seq, location):
        idx, gen = self.layout.seq_block(seq), self.layout.seq_gen(seq)
        return Ack(seq, idx, gen, blocks.record_sum(self.run, idx, gen),
                   *location, self.run)

    @property
    def acked_seqs(self):
        return list(self._ack_seqs)

    @property
    def last_seq(self):
        """Highest acknowledged seq of this run, -1 when none; every seq up
        to it was written, even when some ACK lines are missing."""
        return self._ack_seqs[-1] if self._ack_seqs else -1

    @property
    def acked_writes(self):
        return self.last_seq + 1

    @property
    def last_ack(self):
        if not self._ack_seqs:
            return None
        return self._ack(self._ack_seqs[-1],
                         self._locator.restart()(self._ack_offsets[-1]))

    @property
    def done_seen(self):
        return self.done is not None

    @property
    def sources(self):
        """(first, last) console index of the run's records."""
        return self.location[0], self.last_location[0]

    def to_dict(self):
        last = self.last_ack
        return {
            'run': self.run,
            'where': 'console %d line %d' % self.location,
            'sources': list(self.sources),
            'acks': len(self._ack_seqs),
            'last_seq': self.last_seq,
            'last_ack': ('console %d line %d' % (last.source, last.line)
                         if last else None),
            'done': self.done,
            'proven_seq': self.proven_seq,
            'claimed_seq': self.claimed_seq,
            'evidence': [dict(e._asdict()) for e in self.evidence],
        }


class History(object):
    """What the guest acknowledged, run by run.

    ``runs`` are the runs (boots) in order; ``problems`` make the history
    untrustworthy; ``warnings`` do not; ``write_errors`` are ERR lines;
    ``notes`` are NOTE texts; ``tag`` the agent read (None: untagged).

    For a history of one run, as before runs existed: ``run``,
    ``run_location``, ``last_seq``, ``done`` are those of the last run,
    ``layout`` that of every run, ``acks`` the valid ACKs of all runs in
    order (each names its run), ``acked_writes`` the count of acknowledged
    writes over all runs (``last_seq + 1`` for one run).
    """

    def __init__(self, tag=None):
        self.tag = tag
        self.runs = []
        self.problems = []
        self.warnings = []
        self.write_errors = []
        self.notes = []
        self._acks = None

    @property
    def run(self):
        return self.runs[-1].run if self.runs else None

    @property
    def layout(self):
        return self.runs[0].layout if self.runs else None

    @property
    def run_location(self):
        return self.runs[-1].location if self.runs else None

    @property
    def done(self):
        return self.runs[-1].done if self.runs else None

    @property
    def acks(self):
        if self._acks is None:
            self._acks = [a for r in self.runs for a in r.acks]
        return self._acks

    @property
    def last_seq(self):
        """Highest acknowledged seq of the last run, -1 when nothing was
        acknowledged in it."""
        return self.runs[-1].last_seq if self.runs else -1

    @property
    def acked_writes(self):
        """Acknowledged writes over all runs."""
        return sum(r.acked_writes for r in self.runs)

    @property
    def fatal_problems(self):
        return [p for p in self.problems if p.fatal]

    @property
    def ok(self):
        return not self.problems

    def find_run(self, run):
        """The Run with id *run*, or None."""
        for r in self.runs:
            if r.run == run:
                return r
        return None

    def to_dict(self):
        return {
            'run': self.run,
            'tag': self.tag,
            'layout': self.layout.to_dict() if self.layout else None,
            'acks': sum(len(r._ack_seqs) for r in self.runs),
            'last_seq': self.last_seq,
            'done': self.done,
            'runs': [r.to_dict() for r in self.runs],
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


def ack_count(text, tag=None):
    """How many ACK records a console text holds, without parsing them:
    a waiter's cheap measure of progress (parse() judges them)."""
    return text.count(_grammar(tag).head + ' ACK ')


def fatal_line(text, tag=None):
    """The workload's ``MTP FATAL`` record in a console text, or None."""
    at = text.find(_grammar(tag).head + ' FATAL')
    return text[at:].splitlines()[0] if at >= 0 else None


def parse(text, tag=None):
    """Parse console text (a str, bytes, or a list of them, in time order)
    to a History of the untagged agent, or of agent *tag*."""
    texts = [text] if isinstance(text, (str, bytes)) else list(text)
    return _Parser([t.decode('utf-8', 'replace') if isinstance(t, bytes)
                    else t for t in texts], _grammar(tag), tag).parse()


def _expected_acks(fmt, layout, run, seq):
    """The ACK records of writes seq, seq+1, ... as the workload prints
    them (from the tag, without the line end)."""
    wf, wc, step = layout.work_first, layout.work_count, layout.step
    runi = int(run, 16)
    hi, hg, mask = blocks.HASH_IDX, blocks.HASH_GEN, blocks.MASK32
    while True:
        idx = wf + (seq * step) % wc
        gen = seq // wc + 1
        yield fmt % (seq, idx, gen, (runi ^ idx * hi ^ gen * hg) & mask)
        seq += 1


class _Parser(object):
    """One pass over the joined texts, building a History."""

    def __init__(self, texts, grammar, tag):
        self.g = grammar
        self.text = ''.join(texts)
        starts = [0]
        for t in texts[:-1]:
            starts.append(starts[-1] + len(t))
        self.starts = starts
        self.h = History(tag)
        self.where = _Locator(self.text, starts)
        self.cur = None             # the current Run
        # after a RUN line that starts no run (other-disk, run-again): that
        # boot's records are not the history's
        self.ignoring = False
        # ACKs before any RUN line make one problem, with their count: one
        # problem per ACK would make a report as long as the console
        self.orphans, self.orphan_at = 0, None
        # ACKs that fit another run's id: seqs seen, per implied run id
        self.foreign = collections.defaultdict(set)

    def parse(self):
        seqs = offsets = None
        end = len(self.text)
        seq, acks = self.next_acks()
        expected = next(acks)
        for m in self.g.record.finditer(self.text):
            # the next write's ACK, as printed: nothing to judge (the
            # common case, kept to a string comparison and two appends)
            if m[0].rstrip() == expected:
                seqs.append(seq)
                offsets.append(m.start())
                seq += 1
                expected = next(acks)
                continue
            rest = None
            if expected is not None:
                rest = self.cut_by_switch(m, expected)
            if rest is not None:
                seqs.append(seq)
                offsets.append(m.start())
                seq += 1
                expected = next(acks)
                if not rest:
                    continue
                # The next console begins with a record of its own.
                m = rest
            if not self.cut_by_boot(m):
                self.record(m[1], m[0].rstrip(), m.start(), m.end() < end)
            seq, acks = self.next_acks()
            expected = next(acks)
            if self.cur is not None:
                seqs, offsets = self.cur._ack_seqs, self.cur._ack_offsets
        self.finish()
        return self.h

    def next_acks(self):
        """(next seq, iterator over the ACK records from it on)."""
        cur = self.cur
        if cur is None or self.ignoring:
            return 0, itertools.repeat(None)
        seq = cur.last_seq + 1
        return seq, _expected_acks(self.g.ack_fmt, cur.layout, cur.run, seq)

    def cut_by_boot(self, m):
        """Judge a record that a console's end cut and the next console, a
        new boot's, does not continue: the joined line is not well-formed
        and the next record from where that console starts is a RUN line.
        The record is judged as cut there (as at the end of the history),
        and a RUN record in the rest of the line on its own.  False when
        *m* is not such a record."""
        i = bisect.bisect_right(self.starts, m.start())
        if i == len(self.starts) or self.starts[i] >= m.end():
            return False
        form = {'ACK': self.g.ack, 'RUN': self.g.run, 'ERR': self.g.err,
                'DONE': self.g.done}.get(m[1])
        if form is None or form.match(m[0].rstrip()):
            return False
        cut = self.starts[i]
        after = self.g.record.search(self.text, cut)
        if after is None or after[1] != 'RUN':
            return False
        self.record(m[1], self.text[m.start():cut].rstrip(), m.start(),
                    False)
        if after.start() < m.end():
            self.record('RUN', after[0].rstrip(), after.start(),
                        after.end() < len(self.text))
        return True

    def cut_by_switch(self, m, expected):
        """Count an ACK whose line a console's end cut, and whose rest the
        next console of the same boot lost: a live migration switched the
        guest to another host while its serial port was sending the line
        (seen on the lab cloud: 'MTP ACK 481 16355 1 ' at the source's
        end, '\\r\\n' at the destination's start).  What came is the
        start of *expected*, the ACK of the next write, which the guest
        prints only once that write is durable; what follows, if
        anything, is its end, or a record of its own that begins the next
        console (seen on local storage: the source's console log went with
        its instance folder before the last of it was read, and the
        destination's began with a later ACK).  A warning 'cut-at-switch'
        tells.  Returns None when *m* is not such a record, else that
        record of the next console or an empty tuple."""
        i = bisect.bisect_right(self.starts, m.start())
        if m[1] != 'ACK' or i == len(self.starts) or \
                self.starts[i] >= m.end():
            return None
        cut = self.starts[i]
        head = self.text[m.start():cut].rstrip()
        tail = self.text[cut:m.end()].strip()
        if not expected.startswith(head) or head == expected:
            return None
        rest = ()
        if not expected.endswith(tail):
            skip = len(self.text[cut:m.end()]) - len(
                self.text[cut:m.end()].lstrip())
            rest = self.g.record.match(self.text, cut + skip)
            if rest is None:
                return None
        self.problem('cut-at-switch', m.start(), head,
                     'the console switched hosts inside the ACK of seq %s '
                     '(%r): counted, the guest printed it'
                     % (expected.split()[2], head), warning=True)
        return rest

    def record(self, kind, rec, at, terminated):
        """Judge one record, in full: *at* is its offset in the text,
        *terminated* whether a newline ends its line."""
        if self.ignoring and kind != 'RUN':
            return
        getattr(self, '_' + kind.lower())(rec, at, terminated)

    def problem(self, kind, at, rec, detail, warning=False):
        found = Problem(kind, *self.where(at), text=rec, detail=detail)
        (self.h.warnings if warning else self.h.problems).append(found)
        if kind in _ACK_SHAPED and self.cur is not None and \
                rec.startswith(self.g.ack_start):
            self.cur._raw_evidence.append((kind, at, rec))

    def partial(self, at, rec):
        self.problem('partial-tail', at, rec, 'console ends inside a record',
                     warning=True)

    def _ack(self, rec, at, terminated):
        cur = self.cur
        m = self.g.ack.match(rec)
        if not m:
            if terminated:
                self.problem('malformed', at, rec, 'unparseable ACK record')
            else:
                self.partial(at, rec)
            return
        seq, idx, gen = (int(m.group(i)) for i in (1, 2, 3))
        if cur is None:
            if not self.orphans:
                self.orphan_at = len(self.h.problems)
                self.problem('no-run', at, rec, 'ACK before any RUN line')
            self.orphans += 1
            return
        layout = cur.layout
        want = (layout.seq_block(seq), layout.seq_gen(seq))
        want_sum = blocks.record_sum(cur.run, *want)
        got_sum = int(m.group(4), 16)
        if (idx, gen) != want or got_sum != want_sum:
            self.problem('bad-sum', at, rec, 'seq %d must be idx %d gen %d '
                         'sum %08x' % ((seq,) + want + (want_sum,)))
            if (idx, gen) == want:
                self.foreign_ack(seq, idx, gen, got_sum, at, rec)
            return
        last = cur.last_seq
        if seq <= last:
            # its content is that of its seq (checked above), so an
            # acknowledged seq again is a repeated line
            i = bisect.bisect_left(cur._ack_seqs, seq)
            if cur._ack_seqs[i] == seq:
                self.problem('duplicate', at, rec, 'seq %d repeated' % seq,
                             warning=True)
            else:
                self.problem('order', at, rec,
                             'seq %d after seq %d' % (seq, last))
            return
        if seq > last + 1:
            self.problem('gap', at, rec, 'acks for seq %d..%d missing'
                         % (last + 1, seq - 1))
        cur._ack_seqs.append(seq)
        cur._ack_offsets.append(at)

    def foreign_ack(self, seq, idx, gen, got_sum, at, rec):
        """An ACK whose idx and gen are those of its seq but whose sum is
        another run's: two such seqs of one unknown run id mean a run
        whose RUN line is missing."""
        implied = '%08x' % ((got_sum ^ idx * blocks.HASH_IDX ^
                             gen * blocks.HASH_GEN) & blocks.MASK32)
        # a run id that differs from a known one in one or two hex digits
        # is a damaged sum (a random id does so once in 10**7)
        if any(sum(x != y for x, y in zip(implied, r.run)) <= 2
               for r in self.h.runs):
            return
        seen = self.foreign[implied]
        seen.add(seq)
        if len(seen) == 2:
            self.problem('unknown-run', at, rec, 'ACKs of run %s, whose RUN '
                         'line is missing or damaged' % implied)

    def _run(self, rec, at, terminated):
        h = self.h
        m = self.g.run.match(rec)
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
        cur = self.cur
        if cur is not None and (run, layout) == (cur.run, cur.layout):
            self.problem('duplicate', at, rec, 'RUN line repeated',
                         warning=True)
            return
        if h.runs:
            first = h.runs[0]
            if layout != first.layout:
                self.problem('other-disk', at, rec, 'run %s is on another '
                             'disk than run %s (console %d line %d): %s'
                             % ((run, first.run) + first.location +
                                (layout.to_dict(),)))
                self.ignore(at)
                return
            if h.find_run(run) is not None:
                self.problem('run-again', at, rec, 'RUN line of run %s '
                             'after run %s: texts out of order?'
                             % (run, cur.run))
                self.ignore(at)
                return
        else:
            try:
                layout.validate()
            except ValueError as e:
                self.problem('bad-run', at, rec, 'unusable layout: %s' % e)
                return
        if cur is not None and cur.end is None:
            cur.end = at
        self.ignoring = False
        self.cur = Run(run, layout, at, self.where(at), self.where)
        h.runs.append(self.cur)

    def ignore(self, at):
        """Ignore the records up to the next RUN line."""
        if self.cur.end is None:
            self.cur.end = at
        self.ignoring = True

    def _err(self, rec, at, terminated):
        m = self.g.err.match(rec)
        if m:
            self.h.write_errors.append(WriteError(
                *(int(m.group(i)) for i in (1, 2, 3, 4)), *self.where(at),
                self.cur.run if self.cur else None))
        elif terminated:
            self.problem('malformed', at, rec, 'unparseable ERR record')

    def _done(self, rec, at, terminated):
        cur = self.cur
        m = self.g.done.match(rec)
        if not terminated:
            # the count may be cut ("MTP DONE 1" of "MTP DONE 100"): the
            # capture ended, no record is lost, no write is known to be
            # the last
            self.partial(at, rec)
        elif m:
            count = int(m.group(1))
            last = cur.last_seq if cur else -1
            if cur is not None:
                cur.done, cur._done_at = count, at
            if count != last + 1:
                self.problem('gap', at, rec, 'DONE %d but last ack is seq %d'
                             % (count, last))
        else:
            self.problem('malformed', at, rec, 'unparseable DONE record')

    def _fatal(self, rec, at, terminated):
        m = self.g.fatal.match(rec)
        self.problem('fatal', at, rec, m.group(1) if m else rec)

    def _note(self, rec, at, terminated):
        m = self.g.note.match(rec)
        self.h.notes.append(m.group(1) if m else rec)

    def finish(self):
        h = self.h
        if self.orphans > 1:
            h.problems[self.orphan_at] = h.problems[self.orphan_at]._replace(
                detail='%d ACKs before any RUN line' % self.orphans)
        if not h.runs and not any(p.kind == 'no-run' for p in h.problems):
            h.problems.append(Problem('no-run', 0, 0, '',
                                      'no RUN line in the console'))
        if h.runs and h.runs[-1].end is None:
            h.runs[-1].end = len(self.text)
        for run in h.runs:
            self.judge_tail(run)

    # -- the tail of a run ----------------------------------------------------

    def judge_tail(self, run):
        """Collect the evidence of ACKs after the run's last counted one
        and set its proven_seq and claimed_seq."""
        text = self.text
        last = run.last_seq
        after = run._ack_offsets[-1] if run._ack_offsets else run.start
        if run is self.h.runs[-1]:
            self.cut_ack_start(after)
        found = [e for e in run._raw_evidence if e[1] > after]
        cuts = self.cut_lines(run, after)
        seen = {at for _, at, _ in found}
        found.extend(c for c in cuts if c[1] not in seen)
        ends = [after] + [at for _, at, _ in run._raw_evidence[-1:]]
        if run._done_at is not None:
            ends.append(run._done_at)
        run.last_location = self.where(max(ends))
        nul = self.first_nul(run, after)
        proven = last
        if cuts:
            # a line cut where its console ends that is the start of the
            # next write's ACK: the guest printed it, so that write is
            # durable
            expected = next(_expected_acks(self.g.ack_fmt, run.layout,
                                           run.run, last + 1))
            if any(expected.startswith(rec) for _, _, rec in cuts):
                proven = last + 1
        # every line from there that shows an ACK-shaped record or NULs
        lines = {text.rfind('\n', 0, at) + 1 for _, at, _ in found}
        evidence = list(found)
        nuls = []
        while nul >= 0:
            lines.add(text.rfind('\n', 0, nul) + 1)
            nuls.append(('nul', nul, ''))
            eol = text.find('\n', nul)
            nul = -1 if eol < 0 else self.first_nul(run, eol)
        if nuls:
            evidence.extend(nuls)
            self.h.warnings.append(Problem(
                'nul', *self.where(nuls[0][1]), text='',
                detail='NUL bytes after the last ACK of run %s' % run.run))
        shortest = self.shortest_ack_line(run.layout, last + 1)
        hide = {start: self.hidden_acks(start, shortest) for start in lines}
        claimed = last + sum(hide.values())
        if run.done is not None and run.done - 1 > claimed:
            claimed = run.done - 1
            evidence.append(('done', run._done_at, 'DONE %d' % run.done))
        run.proven_seq = proven
        run.claimed_seq = max(claimed, proven)
        evidence.sort(key=lambda e: e[1])
        run.evidence = [Evidence(kind, *self.where(at), rec)
                        for kind, at, rec in evidence]

    def hidden_acks(self, start, shortest):
        """The most ACK records that the line at *start* held: those whose
        start it shows ("MTP A"), and those whose start a run of NULs may
        have covered (a hole may have taken newlines too, so one line of
        NULs may be several).  Two ACK starts are at least *shortest*
        characters apart.  At least one: the line is evidence of one."""
        text = self.text
        end = text.find('\n', start)
        end = len(text) if end < 0 else end
        line = text[start:end]
        mark = self.g.ack_start
        shown = [m.start() for m in re.finditer(re.escape(mark), line)]
        count = len(shown)
        for m in re.finditer('\0+', line):
            a, b = m.span()
            lo = max([a] + [t + shortest for t in shown if t < a])
            hi = min([b - len(mark)] + [t - shortest for t in shown
                                        if t >= b])
            if hi >= lo:
                count += (hi - lo) // shortest + 1
        return max(1, count)

    def shortest_ack_line(self, layout, seq):
        """Length of the shortest ACK line (with its newline) that a write
        from *seq* on can print."""
        return len(self.g.ack_fmt % (
            seq, layout.work_first, layout.seq_gen(seq), 0)) + 1

    def cut_lines(self, run, after):
        """The ACK records cut where a console of the run's span ends
        without a newline (the last one, or one that the next console,
        a new boot's, does not continue), from their start to the cut, as
        ('partial-tail', offset, text)."""
        text = self.text
        ends = [s for s in self.starts[1:] if after < s <= run.end]
        if run.end == len(text):
            ends.append(len(text))
        mark = self.g.ack_start
        out = []
        for end in ends:
            if text[end - 1:end] in ('', '\n'):
                continue
            start = max(text.rfind('\n', 0, end) + 1, after + 1)
            at = text.rfind(mark, start, end)
            if at >= 0:
                out.append(('partial-tail', at, text[at:end].rstrip()))
        return out

    def cut_ack_start(self, after):
        """A partial-tail for the console's unterminated last line if it
        ends in the start of an ACK too short for the record regex ("MTP
        A", "MTP AC")."""
        text = self.text
        start = self.g.ack_start
        at = text.rfind(start, max(text.rfind('\n') + 1, after))
        if at >= 0:
            rec = text[at:]
            whole = start + 'CK'
            if len(rec) < len(whole) and whole.startswith(rec):
                self.partial(at, rec)

    def first_nul(self, run, at):
        """The first NUL byte from *at* in the run's span, or -1.  The span
        stops where the console that holds the next RUN line starts: a new
        boot's console is not the run's."""
        end = run.end
        if run is not self.h.runs[-1]:
            src = bisect.bisect_right(self.starts, end) - 1
            if self.starts[src] > at:
                end = self.starts[src]
        return self.text.find('\0', at, end)


def render(layout, run, count, done=False, noise=True, tag=None):
    """Console text the workload would print for *count* writes.

    A helper for tests and benchmarks; *noise* adds kernel-like lines,
    *tag* prints the records of a tagged agent.
    """
    head = _grammar(tag).head
    out = []
    if noise:
        out.append('[    0.000000] Linux version 6.1.0 (fake)\r\n')
    out.append('%s RUN %s image=%s static=%d+%d work=%d+%d step=%d%s\r\n'
               % (head, run, layout.image_id, layout.static_first,
                  layout.static_count, layout.work_first, layout.work_count,
                  layout.step, (' zero=%d' % layout.zero_every
                                if layout.zero_every else '')))
    for seq in range(count):
        idx, gen = layout.seq_block(seq), layout.seq_gen(seq)
        out.append('%s ACK %d %d %d %08x\r\n' % (
            head, seq, idx, gen, blocks.record_sum(run, idx, gen)))
    if done:
        out.append('%s DONE %d\r\n' % (head, count))
    return ''.join(out)
