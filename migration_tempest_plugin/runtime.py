"""What the lab and the lab cloud both stand on: errors, commands, processes,
mounts and waits on this machine.

Nothing here knows about nodes, storage or OpenStack; ``lab/`` and
``cloud/`` build on it, and what tempest loads never imports it.
"""

import contextlib
import ctypes
import errno
import json
import os
import shutil
import signal
import subprocess
import time

from migration_tempest_plugin import errors

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


def parse_proc_stat(text):
    """(state, start time in clock ticks) from /proc/PID/stat."""
    rest = text[text.rindex(')') + 2:].split()
    return rest[0], int(rest[19])


# -- processes ------------------------------------------------------------

def proc_stat(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return parse_proc_stat(f.read())
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None


def reap(pid):
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def pid_alive(pid, start=None):
    st = proc_stat(pid)
    if st is None:
        return False
    if st[0] in ('Z', 'X'):
        reap(pid)
        return False
    return start is None or st[1] == start


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
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid in (1, os.getpid()):
            continue
        if (ns_inode('/proc/%d/ns/net' % pid) in wanted_net
                or ns_inode('/proc/%d/ns/mnt' % pid) in wanted_mnt):
            found.append(pid)
    return found


def terminate(pids, timeout=15.0):
    """SIGTERM the given (pid, start) pairs, wait, then SIGKILL.  Returns
    the PIDs still alive afterwards (should be none)."""
    pids = [(p, s) for p, s in pids if pid_alive(p, s)]
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        for p, s in pids:
            if pid_alive(p, s):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            pids = [(p, s) for p, s in pids if pid_alive(p, s)]
            if not pids:
                return []
            time.sleep(0.1)
    return [p for p, s in pids if pid_alive(p, s)]


class ProcTable:
    """Daemons the lab started: <state>/pids/NAME.json with the PID and its
    start time (so a recycled PID is never taken for ours)."""

    def __init__(self, folder):
        self.folder = folder
        self.children = {}

    def _file(self, name):
        return os.path.join(self.folder, name + '.json')

    def record(self, name, proc, argv, log):
        os.makedirs(self.folder, exist_ok=True)
        st = proc_stat(proc.pid)
        data = {'pid': proc.pid, 'start': st[1] if st else None,
                'argv': list(argv), 'log': log}
        with open(self._file(name), 'w') as f:
            json.dump(data, f)
        self.children[name] = proc

    def get(self, name):
        try:
            with open(self._file(name)) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return None

    def pid(self, name):
        """The PID if that daemon is alive, else None."""
        data = self.get(name)
        if data and pid_alive(data['pid'], data['start']):
            return data['pid']
        return None

    def names(self):
        if not os.path.isdir(self.folder):
            return []
        return sorted(n[:-5] for n in os.listdir(self.folder)
                      if n.endswith('.json'))

    def entry(self, name):
        data = self.get(name)
        return (data['pid'], data['start']) if data else None

    def forget(self, name):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._file(name))
        proc = self.children.pop(name, None)
        if proc is not None:
            with contextlib.suppress(Exception):
                proc.poll()


def tail(path, lines=12):
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode('utf-8', 'replace')
    except OSError:
        return '(no log at %s)' % path
    # Only what the last run wrote (spawn() starts each run with '--- ').
    marker = text.rfind('\n--- ')
    if marker >= 0:
        text = text[marker + 1:].split('\n', 1)[-1]
    return one_line('\n'.join(text.splitlines()[-lines:]), 600)


def command_env():
    env = dict(os.environ)
    path = env.get('PATH', '')
    env['PATH'] = path + ':' + _SBIN_PATH if path else _SBIN_PATH
    env['LC_ALL'] = 'C'
    return env


def which(binary):
    return shutil.which(binary, path=command_env()['PATH'])


def host_run(argv, check=True, timeout=120, input=None, where='host',
             env=None):
    try:
        res = subprocess.run(argv, capture_output=True, text=True,
                             timeout=timeout, input=input,
                             env=env or command_env(),
                             cwd='/', stdin=None if input is not None
                             else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise LabError('%s: `%s` timed out after %ss' % (
            where, ' '.join(argv), timeout)) from exc
    except FileNotFoundError as exc:
        raise LabError('%s: `%s` not found' % (where, argv[0])) from exc
    if check and res.returncode:
        raise LabCommandError(argv, res.returncode, res.stdout, res.stderr,
                              where)
    return res


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


def wait_for(what, predicate, timeout, proc_check=None, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        if proc_check is not None:
            proc_check()
        if predicate():
            return
        if time.monotonic() > deadline:
            raise LabError('timed out after %ss waiting for %s'
                           % (timeout, what))
        time.sleep(interval)
