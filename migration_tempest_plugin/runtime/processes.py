"""Processes this project started: known by PID and start time, ended by
PID (never by name), and the Supervisor of the long-lived ones."""

import contextlib
import json
import logging
import os
import subprocess
import time

import psutil

from migration_tempest_plugin.runtime import commands
from migration_tempest_plugin.runtime.errors import LabError
from migration_tempest_plugin.runtime import files
from migration_tempest_plugin.runtime import waits

LOG = logging.getLogger(__name__)


# -- processes ------------------------------------------------------------
# A process is known by its PID and its start time (psutil's create_time),
# so that a PID the kernel has given to someone else is never taken for
# ours; a zombie is reaped and counts as gone.

def reap(pid):
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def proc_start(pid):
    """The start time of a live process, or None."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            reap(pid)
            return None
        return proc.create_time()
    except psutil.Error:
        return None


def pid_alive(pid, start=None):
    now = proc_start(pid)
    return now is not None and (start is None or now == start)


def ns_inode(path):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def pids_in_namespaces(net_inodes=(), mnt_inodes=()):
    """PIDs of the processes inside any of the given namespaces (never the
    host's own namespaces, never this process)."""
    own = {ns_inode('/proc/self/ns/net'), ns_inode('/proc/self/ns/mnt'),
           ns_inode('/proc/1/ns/net'), ns_inode('/proc/1/ns/mnt')}
    wanted_net = {i for i in net_inodes if i} - own
    wanted_mnt = {i for i in mnt_inodes if i} - own
    found = []
    if not wanted_net and not wanted_mnt:
        return found
    for pid in psutil.pids():
        if pid in (1, os.getpid()):
            continue
        if (ns_inode('/proc/%d/ns/net' % pid) in wanted_net
                or ns_inode('/proc/%d/ns/mnt' % pid) in wanted_mnt):
            found.append(pid)
    return found


def entries(pids):
    """(pid, start) of those of `pids` that are alive."""
    out = []
    for pid in pids:
        start = proc_start(pid)
        if start is not None:
            out.append((pid, start))
    return out


def terminate(pairs, timeout=15.0, hard=False):
    """SIGTERM the (pid, start) pairs that are still ours, wait, then
    SIGKILL what is left (`hard`: SIGKILL at once, as a host that fails).
    Returns the PIDs still alive (should be none).  A zombie counts as
    gone: its parent, not us, may be the one to reap it (psutil.wait_procs
    would wait for that)."""
    left = [(p, s) for p, s in pairs if pid_alive(p, s)]
    steps = (('terminate', timeout), ('kill', 5.0))
    for signal_them, wait in steps[1:] if hard else steps:
        for pid, start in left:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == start:  # still ours
                    LOG.debug('%s pid %d', signal_them, pid)
                    getattr(proc, signal_them)()

        def all_gone():
            left[:] = [(p, s) for p, s in left if pid_alive(p, s)]
            return not left
        if waits.call_until_true(all_gone, wait, 0.05):
            return []
    return [p for p, _s in left]


def session_members(leader, start):
    """PIDs in the session that `leader` (started at `start`) opened: the
    leader if it is still ours, and every process of its session that
    started no earlier (daemons that double-forked included).  Empty if
    the PID now belongs to someone else."""
    now = proc_start(leader)
    if now is not None and now != start:
        return []          # recycled PID: not ours any more
    out = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == leader and \
                    proc.create_time() >= start and \
                    proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    return sorted(out)


def rss_bytes(pids):
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            total += psutil.Process(pid).memory_info().rss
    return total


class ServiceError(LabError):
    """A supervised process failed: the message names it and ends with
    the tail of its log."""


class Supervisor:
    """Long-lived processes this project started, each in a session of its
    own, with its output appended to a log.  <pid_dir>/NAME.json records
    its PID, start time, argv and log; stopping it ends the processes of
    that session only (a service and what it forked: gunicorn workers,
    Erlang helpers), never anything found by name."""

    def __init__(self, pid_dir, log_dir=None, env=None):
        """`log_dir`: where log(NAME) is; `env`: the whole environment of
        the processes (default: this process's)."""
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

    def entry(self, name):
        """(pid, start) as recorded, or None."""
        rec = self.record(name)
        return (rec['pid'], rec['start']) if rec else None

    def pid(self, name):
        """The PID if that process is running, else None."""
        rec = self.record(name)
        if rec and pid_alive(rec['pid'], rec['start']):
            return rec['pid']
        return None

    def members(self, name):
        rec = self.record(name)
        if not rec:
            return []
        return session_members(rec['pid'], rec['start'])

    def start(self, name, argv, log=None, env=None, cwd='/'):
        """Start `argv` unless `name` runs already; return its PID."""
        pid = self.pid(name)
        if pid:
            return pid
        log = log or self.log(name)
        os.makedirs(self.pid_dir, exist_ok=True)
        os.makedirs(os.path.dirname(log), exist_ok=True)
        full_env = dict(os.environ if self.base_env is None
                        else self.base_env)
        full_env.update(env or {})
        argv = [str(a) for a in argv]
        with open(log, 'ab') as out:
            out.write(('\n%s%s: %s\n' % (
                commands.START_MARKER, time.strftime('%F %T'),
                ' '.join(argv))).encode())
            out.flush()
            try:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, cwd=cwd, env=full_env,
                    start_new_session=True)
            except OSError as exc:
                raise ServiceError('%s: cannot start %s: %s' % (
                    name, argv[0], exc)) from exc
        start = proc_start(proc.pid)
        files.write_file(self._file(name), json.dumps(
            {'pid': proc.pid, 'start': start, 'argv': argv, 'log': log}))
        LOG.debug('started %s, pid %d: %s (log %s)', name, proc.pid,
                  ' '.join(argv), log)
        return proc.pid

    def stop(self, name, timeout=20.0):
        """End the process's session; True if nothing of it is left."""
        rec = self.record(name)
        if not rec:
            return True
        members = session_members(rec['pid'], rec['start'])
        left = terminate(entries(members), timeout=timeout)
        reap(rec['pid'])
        if left:
            LOG.warning('%s: pids %s outlived TERM and KILL', name, left)
        else:
            LOG.debug('stopped %s (session of pid %d: %d processes)', name,
                      rec['pid'], len(members))
            self.forget(name)
        return not left

    def forget(self, name):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._file(name))

    def failure(self, name, what):
        rec = self.record(name) or {}
        log = rec.get('log') or self.log(name)
        return ServiceError('%s %s; last lines of %s:\n%s' % (
            name, what, log, commands.tail(log)))

    def wait(self, name, what, predicate, timeout, interval=0.5):
        """Wait until predicate() is true while `name` keeps running; a
        probe that raises has not answered yet."""
        def running():
            if not self.pid(name):
                raise self.failure(name, 'exited while waiting until it '
                                   + what)

        def answered():
            try:
                return predicate()
            except Exception:
                return False
        try:
            waits.wait_for(what, answered, timeout, running, interval)
        except ServiceError:
            raise
        except LabError:
            raise self.failure(name, 'had not %s after %ds'
                               % (what, timeout)) from None
