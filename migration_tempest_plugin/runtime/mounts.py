"""Mount tables and mounts: /proc/PID/mountinfo parsed, bind and unmount
by system call or by umount(8) in a namespace."""

import ctypes
import errno
import logging
import os

LOG = logging.getLogger(__name__)


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
