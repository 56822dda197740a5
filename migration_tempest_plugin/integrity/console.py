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

"""Rebuild the guest's console stream from repeated tail captures (pure).

Nova's ``os-getConsoleOutput`` answers with the *tail* of the instance's
console log: the libvirt driver returns at most the last 100 KiB, so a
capture may start in the middle of a line, and it may end in the middle of
one (the guest is still printing).  After a live migration the destination
node's log usually starts afresh; on shared storage it may be the same file,
continued.  A test that polls the API must turn its captures back into the
one stream of lines the guest printed, for ``history.parse``.

``ConsoleStream.add(capture)`` classifies each capture against what was
seen so far:

``GREW``
    the capture starts with the whole current segment: the log grew;
``SLID``
    a suffix of what was seen (at least ``ANCHOR`` characters) is a prefix
    of the capture: the 100 KiB window slid along a growing log;
``SEEN``
    the capture adds nothing (identical, or contained in the recent text of
    the current or of the previous segment: a stale answer);
``NEW``
    none of these: the console was restarted (the destination's fresh log)
    or so much was printed between two polls that nothing overlaps; the
    capture starts a new segment.  The first capture also starts one.
``EMPTY``
    nothing was captured; ignored.

``texts()`` gives one text per segment, ready for ``history.parse`` (which
joins its texts without a separator).  No line is ever made of pieces of two
segments:

* A closed segment ends at its last newline; its unterminated last line is
  dropped.  The source's last capture is in general not the end of the
  source's log (the guest went on printing between the last poll and the
  switch-over), so the destination's first line is not known to continue
  it; gluing the two would invent a line (the head of ACK 40 and the end
  of ACK 45, a ``malformed`` record: a false ERROR on an intact disk).
  Dropping it loses at most that one record, which ``history.parse`` then
  reports as a ``gap`` (callers polling the console tolerate gaps: what the
  guest printed between two polls around the switch-over is lost anyway).
* A segment's first line may be the end of a line whose start the capture
  does not hold (the window cut it, or the destination's log starts where
  the source's stopped).  A line cut at its head either lost its ``MTP``
  tag (``history.parse`` ignores it) or still holds the record intact from
  the tag to its end (it parses as the guest printed it), so it is kept;
  only if it would parse as ``malformed`` (its record does not parse, as a
  cut or a glued line would make it) is it dropped, again at worst a gap.

Each ``add`` costs time linear in the capture and in a bounded tail of the
current segment (``keep`` characters, at least twice the largest capture),
not in the whole history, so a 100 KiB capture every second or two is cheap.
"""

import re

from migration_tempest_plugin.integrity import history

EMPTY = 'empty'
GREW = 'grew'
SLID = 'slid'
SEEN = 'seen'
NEW = 'new'

# the agents whose records a line holds: None for MTP, the tag for MTP.<tag>
_AGENT_RE = re.compile(r'MTP(?:\.([a-z0-9]+))? ')


def _decode(text):
    if isinstance(text, bytes):
        return text.decode('utf-8', 'replace')
    return text or ''


def _malformed(line):
    """Whether history.parse reports this one (terminated) line malformed,
    for the untagged agent or a tagged one (``MTP.<tag>``)."""
    if 'MTP' not in line:
        return False
    return any(p.kind == 'malformed'
               for tag in {m.group(1) for m in _AGENT_RE.finditer(line)}
               for p in history.parse(line + '\n', tag=tag).problems)


def _finish(raw, closed):
    """A segment's text for history.parse: see the module docstring."""
    if closed:
        raw = raw[:raw.rfind('\n') + 1]
    end = raw.find('\n')
    if end >= 0 and _malformed(raw[:end].rstrip('\r')):
        raw = raw[end + 1:]
    return raw


class ConsoleStream(object):
    """The guest's console stream, rebuilt from successive tail captures.

    ``add(capture)`` merges one capture (str or bytes) and says how
    (``GREW``, ``SLID``, ``SEEN``, ``NEW`` or ``EMPTY``); ``texts()`` is the
    list of segment texts for ``history.parse``; ``last()`` is the latest
    non-empty capture as nova returned it (to look for ``MTP FATAL``).
    """

    # Characters of overlap needed to call a capture a slid window: several
    # ACK lines, and ACK lines are unique (by seq), so a restarted console
    # cannot match by chance.
    ANCHOR = 256
    # Least number of characters of the current segment kept for matching.
    KEEP = 256 * 1024

    def __init__(self, keep=KEEP):
        self._keep = keep
        self._closed = []       # finished texts of closed segments
        self._chunks = []       # the current segment, raw, in pieces
        self._length = 0        # length of the current segment
        self._tail = ''         # its last (at most) self._keep characters
        self._prev_tail = ''    # the same for the previous segment
        self._last = ''
        self._texts = None      # texts(), until the next change

    def last(self):
        """The latest non-empty capture, unmodified ('' before any)."""
        return self._last

    def add(self, capture):
        """Merge one capture; returns how: GREW, SLID, SEEN, NEW or EMPTY."""
        text = _decode(capture)
        if not text:
            return EMPTY
        self._last = text
        self._keep = max(self._keep, 2 * len(text))
        tail = self._tail
        if not self._length:
            self._append(text)
            return NEW
        whole = self._length == len(tail)
        if whole and text.startswith(tail):
            if len(text) == len(tail):
                return SEEN
            self._append(text[len(tail):])
            return GREW
        if text in tail or text in self._prev_tail:
            return SEEN
        overlap = self._overlap(tail, text)
        if overlap:
            self._append(text[overlap:])
            return SLID
        self._close()
        self._append(text)
        return NEW

    def _overlap(self, tail, text):
        """Length of the longest suffix of tail that is a prefix of text,
        if at least ANCHOR long (else 0).  text is not contained in tail."""
        n = self.ANCHOR
        if len(text) < n or len(tail) < n:
            return 0
        anchor = text[:n]
        end = tail[-n:]
        pos = tail.find(anchor)
        while pos >= 0:
            size = len(tail) - pos
            # cheap check of the overlap's end before comparing all of it
            if (size < len(text) and text.startswith(end, size - n) and
                    tail.startswith(text[:size], pos)):
                return size
            pos = tail.find(anchor, pos + 1)
        return 0

    def _append(self, added):
        self._texts = None
        self._chunks.append(added)
        self._length += len(added)
        tail = self._tail + added
        self._tail = tail[-self._keep:] if len(tail) > self._keep else tail

    def _current(self):
        if len(self._chunks) > 1:
            self._chunks = [''.join(self._chunks)]
        return self._chunks[0] if self._chunks else ''

    def _close(self):
        text = _finish(self._current(), closed=True)
        if text:
            self._closed.append(text)
        self._prev_tail = self._tail
        self._texts = None
        self._chunks, self._length, self._tail = [], 0, ''

    def texts(self):
        """One text per segment, for history.parse; no line spans two."""
        if self._texts is None:
            self._texts = list(self._closed)
            if self._length:
                text = _finish(self._current(), closed=False)
                if text:
                    self._texts.append(text)
        return list(self._texts)
