"""What the lab and the lab cloud both stand on: errors, commands, processes,
mounts and waits on this machine.

Nothing here knows about nodes, storage or OpenStack; ``lab/`` and
``cloud/`` build on it, and what tempest loads never imports it.
"""

import contextlib
import ctypes
import errno
import json
import logging
import os
import shutil
import subprocess
import time

import psutil
from tempest.lib.common.utils import test_utils

from migration_tempest_plugin import errors

LOG = logging.getLogger(__name__)

_SBIN_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


class LabError(errors.Error):
    """Something in the lab failed; the message is one line and says what."""


class LabCommandError(LabError):
    def __init__(self, argv, returncode, stdout, stderr, where='host'):
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        tail = one_line(stderr or stdout or '')
        super().__init__('%s: `%s` exited %s%s' % (
            where, ' '.join(self.argv), returncode,
            ': ' + tail if tail else ''))


# -- pure helpers ---------------------------------------------------------

def one_line(text, limit=400):
    text = ' | '.join(line.strip() for line in text.strip().splitlines()
                      if line.strip())
    return text if len(text) <= limit else '...' + text[-limit:]


def _unescape_mountinfo(field):
    out, i = [], 0
    while i < len(field):
        if field[i] == '\\' and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return ''.join(out)


def parse_mountinfo(text):
    """/proc/PID/mountinfo -> list of dicts (target, root, fstype, source,
    optional), in mount order."""
    mounts = []
    for line in text.splitlines():
        if not line.strip():
            continue
        left, _, right = line.partition(' - ')
        lf, rf = left.split(), right.split()
        mounts.append({
            'id': int(lf[0]), 'parent': int(lf[1]),
            'root': _unescape_mountinfo(lf[3]),
            'target': _unescape_mountinfo(lf[4]),
            'optional': lf[6:],
            'fstype': rf[0] if rf else '',
            'source': _unescape_mountinfo(rf[1]) if len(rf) > 1 else '',
        })
    return mounts


def top_mount(mounts, target):
    """The visible (last) mount at `target`, or None."""
    found = None
    for m in mounts:
        if m['target'] == target:
            found = m
    return found


def mounts_under(mounts, top):
    """Mount points at or below `top`, deepest first."""
    top = top.rstrip('/')
    hits = {m['target'] for m in mounts
            if m['target'] == top or m['target'].startswith(top + '/')}
    return sorted(hits, key=lambda t: (-t.count('/'), t))


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
        if test_utils.call_until_true(all_gone, wait, 0.05):
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


START_MARKER = '--- started '


def tail(path, lines=15, limit=1500):
    """The last lines of a log, from the last start marker on."""
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 32768))
            text = f.read().decode('utf-8', 'replace')
    except OSError:
        return '(no log at %s)' % path
    marker = text.rfind('\n' + START_MARKER)
    if marker >= 0:
        text = text[marker + 1:]
    out = '\n'.join(text.rstrip().splitlines()[-lines:])
    return out if len(out) <= limit else '...' + out[-limit:]


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
                START_MARKER, time.strftime('%F %T'),
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
        write_file(self._file(name), json.dumps(
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
            name, what, log, tail(log)))

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
            wait_for(what, answered, timeout, running, interval)
        except ServiceError:
            raise
        except LabError:
            raise self.failure(name, 'had not %s after %ds'
                               % (what, timeout)) from None


def command_env():
    env = dict(os.environ)
    path = env.get('PATH', '')
    env['PATH'] = path + ':' + _SBIN_PATH if path else _SBIN_PATH
    env['LC_ALL'] = 'C'
    return env


def which(binary):
    return shutil.which(binary, path=command_env()['PATH'])


def host_run(argv, check=True, timeout=120, input=None, where='host',
             env=None, shown=None):
    """Run `argv` to its end and return the CompletedProcess (text output);
    raise LabError on a timeout or a missing program, LabCommandError on a
    failure when `check`.  Errors name `where` and `shown` (the command as
    the caller knows it, when `argv` wraps it)."""
    shown = [str(a) for a in (shown or argv)]
    started = time.monotonic()
    try:
        res = subprocess.run(argv, capture_output=True, text=True,
                             timeout=timeout, input=input,
                             env=env or command_env(),
                             cwd='/', stdin=None if input is not None
                             else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise LabError('%s: `%s` timed out after %ss' % (
            where, ' '.join(shown), timeout)) from exc
    except FileNotFoundError as exc:
        raise LabError('%s: `%s` not found' % (where, argv[0])) from exc
    LOG.debug('%s: %s -> exit %d in %.2fs', where, ' '.join(shown),
              res.returncode, time.monotonic() - started)
    if check and res.returncode:
        raise LabCommandError(shown, res.returncode, res.stdout, res.stderr,
                              where)
    return res


def run_logged(argv, what, log, env=None, timeout=900, input=None,
               stdout_apart=False):
    """Run `argv` to its end with its output appended to `log` (after a
    start marker) and return that output as text; raise LabError naming
    `what`, with the log's tail, if it fails.  With `stdout_apart`, only
    stderr goes to the log and stdout is returned (a tool that answers in
    JSON)."""
    argv = [str(a) for a in argv]
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, 'ab') as out:
        out.write(('\n%s%s: %s\n' % (START_MARKER, time.strftime('%F %T'),
                                     ' '.join(argv))).encode())
        out.flush()
        try:
            res = subprocess.run(
                argv, stdout=subprocess.PIPE,
                stderr=out if stdout_apart else subprocess.STDOUT,
                input=input.encode() if input is not None else None,
                stdin=None if input is not None else subprocess.DEVNULL,
                env=env or command_env(), timeout=timeout, cwd='/')
        except subprocess.TimeoutExpired as exc:
            raise LabError('%s: timed out after %ds' % (what, timeout)
                           ) from exc
        except OSError as exc:
            raise LabError('%s: cannot run %s: %s' % (what, argv[0], exc)
                           ) from exc
        if not stdout_apart:
            out.write(res.stdout)
    if res.returncode:
        raise LabError('%s failed (exit %d); last lines of %s:\n%s' % (
            what, res.returncode, log, tail(log)))
    return res.stdout.decode('utf-8', 'replace')


_MS_BIND = 0x1000
_MS_PRIVATE = 0x40000
_MNT_DETACH = 2
_libc = None


def _syscall(name, *args):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, '%s(%s): %s' % (name, args[1] if name == 'mount'
                                           else args[0], os.strerror(err)))


def bind_private(folder):
    """Make `folder` a private bind mount on itself (mount(2) directly:
    util-linux's mount would create /run/mount on the host)."""
    if top_mount(host_mounts(), folder) is None:
        _syscall('mount', folder.encode(), folder.encode(), None, _MS_BIND,
                 None)
    _syscall('mount', None, folder.encode(), None, _MS_PRIVATE, None)


def host_umount(target):
    """umount2(2) on the host, lazily if busy; True if unmounted."""
    for flags in (0, _MNT_DETACH):
        try:
            _syscall('umount2', target.encode(), flags)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EBUSY,):
                return False
    return False


def host_mounts():
    with open('/proc/self/mountinfo') as f:
        return parse_mountinfo(f.read())


def umount(target, run=None):
    """Unmount (lazily if busy); True if something was unmounted.  With
    `run` (a sandbox's run), inside that sandbox."""
    if run is None:
        return host_umount(target)
    if run(['umount', target], check=False).returncode == 0:
        return True
    return run(['umount', '-l', target], check=False).returncode == 0


def write_file(path, text, mode=0o644):
    """Write `text` to `path` whole or not at all (a reader never sees half
    a file), creating its folder."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def read_json(path):
    """The JSON object in `path`, or {} when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def update_json(path, mode=0o644, **changes):
    """Merge `changes` into the JSON object in `path`; return the result."""
    document = read_json(path)
    document.update(changes)
    write_file(path, json.dumps(document, indent=1, sort_keys=True) + '\n',
               mode)
    return document


def wait_for(what, predicate, timeout, proc_check=None, interval=0.2):
    """Wait until `predicate()` is true; `proc_check()` runs before each try
    and raises when waiting is pointless (the process died)."""
    def ready():
        if proc_check is not None:
            proc_check()
        return predicate()
    started = time.monotonic()
    if not test_utils.call_until_true(ready, timeout, interval):
        raise LabError('timed out after %ss waiting for %s'
                       % (timeout, what))
    LOG.debug('%s after %.1fs', what, time.monotonic() - started)
