"""The guest's console, read from its console log file on the compute hosts.

The console is the guest's history of acknowledged writes.  It is read
where libvirt writes it, <instances_path>/<uuid>/console.log, from an
offset, over the same host access as the rest of the tests: not through
nova's console API, whose every call makes nova's libvirt driver append
the guest's pty buffer to that same file, in the middle of lines the other
writer is writing (review of the earlier recorder; see doc/source/oracle.rst).

Each start of the guest's QEMU (a boot after a cold migration, a resize, a
revert, an unshelve, an evacuation or a hard reboot) truncates the file
(nova asks for ``append='off'``), and a move puts it in another folder or
on another host.  So the recorder keeps *segments*: the text of one file
from one truncation on, in the order it first saw them; a segment ends
when its file shrinks, is replaced, or its first bytes change.  The
segments, in that order, are the texts of one history.
"""

import base64
import collections
import shlex
import threading

import fixtures
from oslo_log import log as logging
from tempest.lib.common.utils import test_utils
from tempest.lib import exceptions as lib_exc

from migration_tempest_plugin.integrity import history as historylib

LOG = logging.getLogger(__name__)

# Bytes before the offset that must still be what was read there: when
# they changed, the file was truncated and written again between reads.
FINGERPRINT = 64
# At most this much is read in one go; the next poll reads on.
READ_LIMIT = 1 << 20


def probe_script(path, offset, inode=None, moved=None):
    """Shell that prints two lines about the console log:

    * the file that still holds the segment of inode `inode` (at `path`,
      or at `moved`, where a move renamed its folder): its size, then
      base64 of its bytes from `offset` - FINGERPRINT on, or '-';
    * '<inode> <size>' of the file at `path` now, or '-'.
    """
    start = max(0, offset - FINGERPRINT)
    return (
        'p={path}; m={moved}; want={inode}; f=; '
        'for c in "$p" "$m"; do '
        '[ -n "$want" ] && [ -f "$c" ] && '
        '[ "$(stat -c %i "$c")" = "$want" ] && {{ f=$c; break; }}; done; '
        'if [ -n "$f" ]; then printf "%s " "$(stat -c %s "$f")"; '
        'tail -c +{first} "$f" | head -c {limit} | base64 -w0; echo; '
        'else echo -; fi; '
        'if [ -f "$p" ]; then stat -c "%i %s" "$p"; else echo -; fi'
    ).format(path=shlex.quote(path), moved=shlex.quote(moved or ''),
             inode=inode or '', first=start + 1,
             limit=READ_LIMIT + offset - start)


class Segment(object):
    """The text of one console file from one truncation on."""

    def __init__(self, host, inode):
        self.host = host
        self.inode = inode
        self.data = bytearray()

    @property
    def offset(self):
        return len(self.data)

    def text(self):
        return self.data.decode('utf-8', 'replace')


class ConsoleLogRecorder(fixtures.Fixture):
    """Reads a server's console log files every `interval` seconds, in the
    background, on every host in `hosts` (name -> ComputeHost).

    `shared` (instances on shared storage): the hosts see one file, which
    is read on the host that runs the guest (`host_of()`), whose client
    wrote it, rather than through the other host's cache.
    """

    def __init__(self, hosts, server_id, host_of, shared, interval=1.0):
        super().__init__()
        self.hosts = hosts
        self.server_id = server_id
        self.host_of = host_of
        self.shared = shared
        self.interval = interval

    def _setUp(self):
        # Per stream (a host's file, or the one shared file): its current
        # segment; every segment, in the order first seen.
        self.current = {}
        self.segments = []
        self.raw = collections.deque(maxlen=50)
        self._lock = threading.Lock()
        # One read at a time: the poller and the test's own reads would
        # otherwise both append the same bytes.
        self._reading = threading.Lock()
        self._stop = threading.Event()
        self._error = None
        self._thread = threading.Thread(
            target=self._poll, name='console-log-%s' % self.server_id,
            daemon=True)
        self._thread.start()
        self.addCleanup(self._halt)

    def _halt(self):
        self._stop.set()
        self._thread.join(timeout=60)

    def _poll(self):
        while not self._stop.wait(self.interval):
            try:
                self.read(best_effort=True)
            except Exception as exc:
                self._error = exc
                LOG.exception('console log recorder of %s stopped',
                              self.server_id)
                return

    def _streams(self):
        if self.shared:
            host = self.host_of()
            return [('shared', host)] if host in self.hosts else []
        return [(name, name) for name in sorted(self.hosts)]

    def read(self, best_effort=False):
        """Read on from each stream's offset once."""
        if self._error is not None:
            raise self._error
        with self._reading:
            self._read_all(best_effort)

    def _read_all(self, best_effort):
        for stream, host in self._streams():
            try:
                self._read_stream(stream, host)
            except Exception as exc:
                # A host that is down for a moment (an evacuation test
                # stops one) or a file that moves: read on next time.
                if not best_effort:
                    raise
                LOG.debug('console log of %s on %s: %s', self.server_id,
                          host, exc)

    def _probe(self, host, path, moved, inode, offset):
        out = host.execute(['sh', '-c', probe_script(path, offset, inode,
                                                     moved)])
        lines = (out.split('\n') + ['-', '-'])[:2]
        held = None
        if lines[0].strip() != '-':
            size, _, encoded = lines[0].strip().partition(' ')
            held = int(size), base64.b64decode(encoded)
        now = None
        if lines[1].strip() != '-':
            now = tuple(int(v) for v in lines[1].split())
        return held, now

    def _read_stream(self, stream, host_name):
        host = self.hosts[host_name]
        path = host.console_log(self.server_id)
        # A resize or cold migration renames the instance folder on the
        # source to <uuid>_resize: the last lines of the run that ended
        # there are read from it.
        moved = path.replace(self.server_id, self.server_id + '_resize', 1)
        with self._lock:
            seg = self.current.get(stream)
        if seg is None:
            held, now = self._probe(host, path, None, None, 0)
        else:
            held, now = self._probe(host, path, moved, seg.inode, seg.offset)
            if held is not None:
                size, data = held
                start = max(0, seg.offset - FINGERPRINT)
                before = bytes(seg.data[start:seg.offset])
                if size >= seg.offset and data[:len(before)] == before:
                    with self._lock:
                        seg.data += data[len(before):]
                    if now is not None and now[0] == seg.inode:
                        return          # the same file, read on
                # else: truncated in place (a new boot): a new segment
        if now is None:
            return
        seg = Segment(host_name, now[0])
        held, _ = self._probe(host, path, None, now[0], 0)
        if held is None:
            return
        seg.data += held[1]
        with self._lock:
            self.current[stream] = seg
            self.segments.append(seg)

    def texts(self):
        with self._lock:
            return [seg.text() for seg in self.segments if seg.data]

    def history(self, tag=None):
        """The history of the agent on the root disk, or of the one whose
        records carry `tag` (a second disk's)."""
        return historylib.parse(self.texts(), tag=tag)

    def acks(self):
        return self.history().acked_writes

    def wait_for(self, predicate, what, timeout, tag=None):
        """Wait until predicate(history) is true (the history of `tag`'s
        agent); a workload that failed ends the wait with its reason."""
        box = {}

        def done():
            self.read(best_effort=True)
            hist = box['history'] = self.history(tag)
            fatal = [p for p in hist.problems if p.kind == 'fatal']
            if fatal:
                raise lib_exc.TempestException(
                    'guest workload failed: %s' % fatal[0].detail)
            return predicate(hist)

        if not test_utils.call_until_true(done, timeout, 1):
            hist = box.get('history')
            raise lib_exc.TimeoutException(
                'guest %s: no %s within %ds (%s writes acknowledged, %d '
                'console segments)' % (
                    self.server_id, what, timeout,
                    hist.acked_writes if hist else '?', len(self.segments)))
        return box['history']

    def wait_for_acks(self, count, timeout):
        """Wait until the guest has acknowledged `count` writes in all."""
        return self.wait_for(lambda h: h.acked_writes >= count,
                             '%d acknowledged writes' % count, timeout)
