"""Helpers both sides need (the plugin, the lab, the lab cloud): a file
written whole or not at all, the PATH that finds sbin tools, a file's
sha256.  Pure standard library; every import contract allows it.
"""

import hashlib
import os

SBIN_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


def atomic_write(path, data, mode=0o644):
    """Write `data` (text or bytes) to `path` whole or not at all (a reader
    never sees half a file), creating its folder."""
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    tmp = '%s.tmp-%d' % (path, os.getpid())
    with open(tmp, 'wb' if isinstance(data, bytes) else 'w') as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def file_sha256(path):
    """The hex sha256 of a file's content, read 1 MiB at a time."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()
