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
    MTP ACK <seq> <idx> <gen> <sum:08x>     write number seq is durable
    MTP ERR <seq> <idx> <gen> rc=<n>         dd failed; the write is retried
    MTP NOTE <text>                          informational
    MTP DONE <count>                         the workload stopped by itself
    MTP FATAL <text>                         the workload refused to run

Because the workload is sequential (it starts write seq+1 only after write
seq was acknowledged), each ACK is fully determined by its seq and the RUN
line: idx, gen and sum are recomputed and any difference is a problem.
"""

import collections
import re

from migration_tempest_plugin.integrity import blocks

_TAG_RE = re.compile(r'MTP (RUN|ACK|ERR|NOTE|DONE|FATAL)\b')
_RUN_RE = re.compile(
    r'MTP RUN ([0-9a-f]{8}) image=([0-9a-f]{8}) static=(\d+)\+(\d+) '
    r'work=(\d+)\+(\d+) step=(\d+)\Z')
_ACK_RE = re.compile(r'MTP ACK (\d+) (\d+) (\d+) ([0-9a-f]{8})\Z')
_ERR_RE = re.compile(r'MTP ERR (\d+) (\d+) (\d+) rc=(\d+)\Z')
_NOTE_RE = re.compile(r'MTP NOTE (.*)\Z')
_DONE_RE = re.compile(r'MTP DONE (\d+)\Z')
_FATAL_RE = re.compile(r'MTP FATAL (.*)\Z')

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
    other content is),
    ``no-run`` (no RUN line, or ACKs before it: one problem), ``second-run``,
    ``bad-run`` (RUN line with an unusable layout), ``fatal`` (the workload
    refused to run).  Warnings use ``partial-tail`` and ``duplicate``.
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
        self.acks = []
        self.problems = []
        self.warnings = []
        self.write_errors = []
        self.notes = []
        self.done = None

    @property
    def last_seq(self):
        """Highest acknowledged seq, -1 when nothing was acknowledged.

        The workload is sequential, so every seq up to this one was
        written, even when some of their ACK lines are missing.
        """
        return self.acks[-1].seq if self.acks else -1

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
            'acks': len(self.acks),
            'last_seq': self.last_seq,
            'done': self.done,
            'problems': [p.to_dict() for p in self.problems],
            'warnings': [p.to_dict() for p in self.warnings],
            'write_errors': [dict(e._asdict()) for e in self.write_errors],
            'notes': list(self.notes),
        }


def _lines(texts):
    """Yield (source, line_number, text, terminated) over joined texts.

    The texts are concatenated without a separator: after a migration the
    source console may end in the middle of a line that the destination
    console finishes.  A line is located where it starts.
    """
    carry = None  # unterminated line: (source, line number, text so far)
    for src, t in enumerate(texts):
        parts = t.split('\n')
        for k, part in enumerate(parts[:-1]):
            if k == 0 and carry is not None:
                yield carry[0], carry[1], (carry[2] + part).rstrip('\r'), True
                carry = None
            else:
                yield src, k + 1, part.rstrip('\r'), True
        tail = parts[-1]
        if tail:
            if carry is not None:
                carry = (carry[0], carry[1], carry[2] + tail)
            else:
                carry = (src, len(parts), tail)
    if carry is not None:
        yield carry[0], carry[1], carry[2].rstrip('\r'), False


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
    if isinstance(text, (str, bytes)):
        texts = [text]
    else:
        texts = list(text)
    texts = [t.decode('utf-8', 'replace') if isinstance(t, bytes) else t
             for t in texts]
    h = History()
    by_seq = {}
    # ACKs before any RUN line make one problem, with their count: one
    # problem per ACK would make a report as long as the console
    orphans, orphan_at = 0, None
    for src, lineno, line, terminated in _lines(texts):
        m = _TAG_RE.search(line)
        if not m:
            continue
        rec = line[m.start():].rstrip()
        kind = m.group(1)

        def problem(k, detail, _src=src, _line=lineno, _rec=rec):
            h.problems.append(Problem(k, _src, _line, _rec, detail))

        if kind == 'ACK':
            am = _ACK_RE.match(rec)
            if not am:
                if not terminated:
                    h.warnings.append(Problem(
                        'partial-tail', src, lineno, rec,
                        'console ends inside a record'))
                else:
                    problem('malformed', 'unparseable ACK record')
                continue
            seq, idx, gen = (int(am.group(i)) for i in (1, 2, 3))
            ssum = int(am.group(4), 16)
            if h.layout is None:
                if not orphans:
                    orphan_at = len(h.problems)
                    problem('no-run', 'ACK before any RUN line')
                orphans += 1
                continue
            want = (h.layout.seq_block(seq), h.layout.seq_gen(seq))
            if (idx, gen) != want or ssum != blocks.record_sum(h.run, idx,
                                                               gen):
                problem('bad-sum', 'seq %d must be idx %d gen %d sum %08x'
                        % (seq, want[0], want[1],
                           blocks.record_sum(h.run, *want)))
                continue
            ack = Ack(seq, idx, gen, ssum, src, lineno)
            if seq in by_seq:
                # its content is that of its seq (checked above), so a
                # repeated seq is a repeated line
                h.warnings.append(Problem('duplicate', src, lineno, rec,
                                          'seq %d repeated' % seq))
                continue
            expected = h.last_seq + 1
            if seq < expected:
                problem('order', 'seq %d after seq %d' % (seq, h.last_seq))
                continue
            if seq > expected:
                problem('gap', 'acks for seq %d..%d missing'
                        % (expected, seq - 1))
            by_seq[seq] = ack
            h.acks.append(ack)
        elif kind == 'RUN':
            rm = _RUN_RE.match(rec)
            if not rm:
                if not terminated:
                    h.warnings.append(Problem(
                        'partial-tail', src, lineno, rec,
                        'console ends inside a record'))
                    continue
                problem('malformed', 'unparseable RUN record')
                continue
            run = rm.group(1)
            layout = blocks.Layout(rm.group(2), *(int(rm.group(i))
                                                  for i in range(3, 8)))
            if h.run is not None:
                if (run, layout) == (h.run, h.layout):
                    h.warnings.append(Problem('duplicate', src, lineno, rec,
                                              'RUN line repeated'))
                else:
                    problem('second-run', 'run %s after run %s (first at '
                            'console %d line %d)' % ((run, h.run) +
                                                     h.run_location))
                continue
            try:
                layout.validate()
            except ValueError as e:
                problem('bad-run', 'unusable layout: %s' % e)
                continue
            h.run, h.layout, h.run_location = run, layout, (src, lineno)
        elif kind == 'ERR':
            em = _ERR_RE.match(rec)
            if em:
                h.write_errors.append(WriteError(
                    *(int(em.group(i)) for i in (1, 2, 3, 4)),
                    source=src, line=lineno))
            elif terminated:
                problem('malformed', 'unparseable ERR record')
        elif kind == 'DONE':
            dm = _DONE_RE.match(rec)
            if not terminated:
                # the count may be cut ("MTP DONE 1" of "MTP DONE 100"):
                # the capture ended, no record is lost, no write is known
                # to be the last
                h.warnings.append(Problem(
                    'partial-tail', src, lineno, rec,
                    'console ends inside a record'))
            elif dm:
                h.done = int(dm.group(1))
                if h.done != h.last_seq + 1:
                    problem('gap', 'DONE %d but last ack is seq %d'
                            % (h.done, h.last_seq))
            else:
                problem('malformed', 'unparseable DONE record')
        elif kind == 'FATAL':
            problem('fatal', _FATAL_RE.match(rec).group(1)
                    if _FATAL_RE.match(rec) else rec)
        elif kind == 'NOTE':
            nm = _NOTE_RE.match(rec)
            h.notes.append(nm.group(1) if nm else rec)
    if orphans > 1:
        h.problems[orphan_at] = h.problems[orphan_at]._replace(
            detail='%d ACKs before any RUN line' % orphans)
    if h.run is None and not any(p.kind == 'no-run' for p in h.problems):
        h.problems.append(Problem('no-run', 0, 0, '',
                                  'no RUN line in the console'))
    return h


def render(layout, run, count, done=False, noise=True):
    """Console text the workload would print for *count* writes.

    A helper for tests and benchmarks; *noise* adds kernel-like lines.
    """
    out = []
    if noise:
        out.append('[    0.000000] Linux version 6.1.0 (fake)\r\n')
    out.append('MTP RUN %s image=%s static=%d+%d work=%d+%d step=%d\r\n' % (
        run, layout.image_id, layout.static_first, layout.static_count,
        layout.work_first, layout.work_count, layout.step))
    for seq in range(count):
        idx, gen = layout.seq_block(seq), layout.seq_gen(seq)
        out.append('MTP ACK %d %d %d %08x\r\n' % (
            seq, idx, gen, blocks.record_sum(run, idx, gen)))
    if done:
        out.append('MTP DONE %d\r\n' % count)
    return ''.join(out)
