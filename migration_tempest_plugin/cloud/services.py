"""Process supervision for the lab cloud, with no service manager.

Each service is started in a session of its own (``setsid``), its output
appended to ``<cloud>/logs/NAME.log``, and its PID with the process start
time recorded in ``<cloud>/pids/NAME.json``.  Stopping a service ends the
processes of that session only (the service and the children it forked:
gunicorn workers, Erlang helpers), identified by session id and start
time, never by name.
"""

import contextlib
import json
import os
import signal
import subprocess
import time

from migration_tempest_plugin import errors
from migration_tempest_plugin import runtime as rt


class ServiceError(errors.Error):
    """A service failed: the message names it and ends with its log tail."""


def _stat(pid):
    """(state, session id, start time) of a process, or None."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            text = f.read()
    except (OSError, ValueError):
        return None
    fields = text[text.rindex(')') + 2:].split()
    return fields[0], int(fields[3]), int(fields[19])


# The lab's own test: alive, not a zombie (reaped if so), same start time.
alive = rt.pid_alive


def session_members(leader, start):
    """PIDs in the session that `leader` (started at `start`) opened: the
    leader if it is still ours, and every process of its session that
    started no earlier.  Empty if the PID now belongs to someone else."""
    st = _stat(leader)
    if st is not None and st[2] != start:
        return []          # recycled PID: not ours any more
    out = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        pid = int(entry)
        s = _stat(pid)
        if s and s[1] == leader and s[2] >= start and s[0] not in 'ZX':
            out.append(pid)
    return sorted(out)


def rss_bytes(pids):
    total = 0
    page = os.sysconf('SC_PAGE_SIZE')
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open('/proc/%d/statm' % pid) as f:
                total += int(f.read().split()[1]) * page
    return total


def tail(path, lines=15, limit=1500):
    """The last lines of a log, from its last start marker on."""
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 32768))
            text = f.read().decode('utf-8', 'replace')
    except OSError:
        return '(no log at %s)' % path
    marker = text.rfind('\n--- started ')
    if marker >= 0:
        text = text[marker + 1:]
    out = '\n'.join(text.rstrip().splitlines()[-lines:])
    return out if len(out) <= limit else '...' + out[-limit:]


class Supervisor:
    """Start, find and stop the cloud's processes by recorded PID."""

    def __init__(self, pid_dir, log_dir, env=None):
        """`env`: the whole environment of the services (default: this
        process's)."""
        self.pid_dir = pid_dir
        self.log_dir = log_dir
        self.base_env = env

    def log(self, name):
        return os.path.join(self.log_dir, name + '.log')

    def _file(self, name):
        return os.path.join(self.pid_dir, name + '.json')

    def record(self, name):
        try:
            with open(self._file(name)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def names(self):
        if not os.path.isdir(self.pid_dir):
            return []
        return sorted(n[:-5] for n in os.listdir(self.pid_dir)
                      if n.endswith('.json'))

    def pid(self, name):
        """The service's PID if it is running, else None."""
        rec = self.record(name)
        if rec and alive(rec['pid'], rec['start']):
            return rec['pid']
        return None

    def members(self, name):
        rec = self.record(name)
        if not rec:
            return []
        return session_members(rec['pid'], rec['start'])

    def start(self, name, argv, env=None, cwd=None):
        """Start `argv` unless `name` runs already; return its PID."""
        pid = self.pid(name)
        if pid:
            return pid
        os.makedirs(self.pid_dir, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        full_env = dict(os.environ if self.base_env is None
                        else self.base_env)
        full_env.update(env or {})
        log = self.log(name)
        with open(log, 'ab') as out:
            out.write(('\n--- started %s: %s\n' % (
                time.strftime('%F %T'), ' '.join(argv))).encode())
            out.flush()
            try:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, cwd=cwd or '/', env=full_env,
                    start_new_session=True)
            except OSError as exc:
                raise ServiceError('%s: cannot start %s: %s' % (
                    name, argv[0], exc)) from exc
        st = _stat(proc.pid)
        with open(self._file(name) + '.tmp', 'w') as f:
            json.dump({'pid': proc.pid, 'start': st[2] if st else 0,
                       'argv': argv, 'log': log}, f)
        os.replace(self._file(name) + '.tmp', self._file(name))
        return proc.pid

    def stop(self, name, timeout=20.0):
        """End the service's session; True if nothing of it is left."""
        rec = self.record(name)
        if not rec:
            return True
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            pids = session_members(rec['pid'], rec['start'])
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not session_members(rec['pid'], rec['start']):
                    break
                time.sleep(0.1)
        left = session_members(rec['pid'], rec['start'])
        if not left:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._file(name))
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(rec['pid'], os.WNOHANG)
        return not left

    def failure(self, name, what):
        return ServiceError('%s %s; last lines of %s:\n%s' % (
            name, what, self.log(name), tail(self.log(name))))

    def wait(self, name, what, predicate, timeout, interval=0.5):
        """Wait until predicate() is true while `name` keeps running."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.pid(name):
                raise self.failure(name, 'exited while waiting until it '
                                   + what)
            try:
                if predicate():
                    return
            except Exception:  # a probe that cannot answer yet
                pass
            if time.monotonic() > deadline:
                raise self.failure(name, 'did not %s within %ds'
                                   % (what, timeout))
            time.sleep(interval)
