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

"""The integrity guest's initramfs: its inputs found on the host (the
kernel, its virtio modules, busybox-static), the /init script, and the
newc cpio written from them, deterministically."""

import collections
import glob
import gzip
import hashlib
import io
import lzma
import os
import re
import shutil
import subprocess

from migration_tempest_plugin import errors

# insmod order matters: each module needs the ones before it.
VIRTIO_MODULES = ('virtio_ring', 'virtio', 'virtio_pci_modern_dev',
                  'virtio_pci_legacy_dev', 'virtio_pci', 'virtio_blk')
MODULE_SUFFIXES = ('.ko', '.ko.xz', '.ko.zst', '.ko.gz')


class GuestBuildError(errors.Error):
    pass


INIT_TEMPLATE = """#!/bin/sh
# /init of the migration-tempest-plugin lab guest (generated).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in %(modules)s; do
    insmod /lib/modules/mtp/$m.ko || echo "MTP NOTE insmod $m failed"
done
dev=/dev/vda
disk2=
read -r cmdline < /proc/cmdline
for w in $cmdline; do
    case "$w" in
    mtp.dev=*) dev=${w#mtp.dev=} ;;
    mtp.disk2=*) disk2=${w#mtp.disk2=} ;;
    esac
done
n=0
while [ ! -b "$dev" ] && [ $n -lt 100 ]; do
    usleep 100000
    n=$((n + 1))
done
if [ -n "$disk2" ]; then
    # A second disk (nova's ephemeral disk, blank or formatted): a second
    # agent, its records tagged with the device's name, labels it when it
    # has no label and writes to it beside the first.  It is waited for in
    # the background: the first agent starts as soon as without it.
    (
        n=0
        while [ ! -b "$disk2" ] && [ $n -lt 30 ]; do
            usleep 100000
            n=$((n + 1))
        done
        tag=${disk2##*/}
        if [ ! -b "$disk2" ]; then
            echo "MTP NOTE no $disk2" >"/dev/console"
        elif [ "$disk2" = "$dev" ]; then
            echo "MTP NOTE $disk2 is the first disk" >"/dev/console"
        else
            case "$tag" in
            *[!a-z0-9]*)
                echo "MTP NOTE no tag for $disk2" >"/dev/console"
                ;;
            *)
                export MTP_TAG="$tag" MTP_INIT=1
                exec /bin/sh /mtp/agent.sh "$disk2" </dev/null \\
                    >"/dev/console" 2>&1
                ;;
            esac
        fi
    ) &
fi
exec /bin/sh /mtp/agent.sh <"/dev/console" >"/dev/console" 2>&1
"""


# -- locating inputs ----------------------------------------------------------

def _version_key(text):
    return [int(p) if p.isdigit() else p for p in re.split(r'(\d+)', text)]


def find_kernel(boot='/boot', modules_root='/lib/modules',
                flavours=('cloud-amd64', 'generic', 'amd64')):
    """Return (kernel path, release) of the newest kernel with modules,
    of the first flavour found: Debian's small cloud kernel first, then
    Ubuntu's generic one (devstack nodes) and Debian's full one."""
    for flavour in flavours:
        found = []
        for path in glob.glob(os.path.join(boot, 'vmlinuz-*-%s' % flavour)):
            release = os.path.basename(path)[len('vmlinuz-'):]
            if os.path.isdir(os.path.join(modules_root, release)):
                found.append((_version_key(release), path, release))
        if found:
            found.sort()
            return found[-1][1], found[-1][2]
    raise GuestBuildError('no kernel with modules (%s) under %s and %s'
                          % (', '.join(flavours), boot, modules_root))


def find_modules(moddir, names=VIRTIO_MODULES):
    """Map each module name to its file, or None when it is built in."""
    builtin = set()
    path = os.path.join(moddir, 'modules.builtin')
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                builtin.add(_module_name(line.strip()))
    files = {}
    dep = os.path.join(moddir, 'modules.dep')
    if os.path.exists(dep):
        with open(dep) as f:
            for line in f:
                rel = line.split(':', 1)[0].strip()
                files.setdefault(_module_name(rel), os.path.join(moddir, rel))
    else:
        for root, _dirs, names_ in os.walk(moddir):
            for n in names_:
                if n.endswith(MODULE_SUFFIXES):
                    files.setdefault(_module_name(n), os.path.join(root, n))
    out = collections.OrderedDict()
    for name in names:
        key = name.replace('-', '_')
        if key in files:
            out[name] = files[key]
        elif key in builtin:
            out[name] = None
        else:
            raise GuestBuildError('module %s is neither built in nor found '
                                  'under %s' % (name, moddir))
    return out


def _module_name(path):
    base = os.path.basename(path)
    for suffix in MODULE_SUFFIXES:
        if base.endswith(suffix):
            base = base[:-len(suffix)]
            break
    return base.replace('-', '_')


def read_module(path):
    """The uncompressed bytes of a kernel module file."""
    with open(path, 'rb') as f:
        data = f.read()
    if path.endswith('.xz'):
        return lzma.decompress(data)
    if path.endswith('.gz'):
        return gzip.decompress(data)
    if path.endswith('.zst'):
        zstd = shutil.which('zstd')
        if not zstd:
            raise GuestBuildError('%s is zstd-compressed and zstd is not '
                                  'installed' % path)
        return subprocess.run([zstd, '-dc', path], check=True,
                              stdout=subprocess.PIPE).stdout
    return data


def find_busybox(candidates=('/bin/busybox', '/usr/bin/busybox')):
    """Path of a statically linked busybox."""
    for path in candidates:
        if os.path.exists(path) and is_static_elf(path):
            return path
    raise GuestBuildError('no statically linked busybox (install '
                          'busybox-static)')


def is_static_elf(path):
    """True for an ELF64 executable without a PT_INTERP program header."""
    with open(path, 'rb') as f:
        head = f.read(64)
        if head[:4] != b'\x7fELF' or head[4] != 2:
            return False
        order = 'little' if head[5] == 1 else 'big'
        phoff = int.from_bytes(head[32:40], order)
        phentsize = int.from_bytes(head[54:56], order)
        phnum = int.from_bytes(head[56:58], order)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        if int.from_bytes(table[i * phentsize:i * phentsize + 4],
                          order) == 3:  # PT_INTERP
            return False
    return True


def busybox_applets(busybox):
    """Applet paths (e.g. 'usr/bin/awk') reported by busybox itself."""
    out = subprocess.run([busybox, '--list-full'], check=True,
                         stdout=subprocess.PIPE,
                         universal_newlines=True).stdout
    return sorted(set(p.strip().lstrip('/') for p in out.split()
                      if p.strip()))


# -- cpio ---------------------------------------------------------------------

class CpioWriter(object):
    """A minimal deterministic newc cpio writer (uid/gid 0, mtime 0)."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1
        self.seen = set()

    def _entry(self, name, mode, data=b'', rdev=(0, 0), nlink=1):
        name = name.lstrip('/')
        if name in self.seen:
            return
        self.seen.add(name)
        encoded = name.encode() + b'\0'
        fields = (self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0,
                  rdev[0], rdev[1], len(encoded), 0)
        self.ino += 1
        head = b'070701' + b''.join(b'%08x' % v for v in fields)
        self.buf.write(head + encoded)
        self._pad()
        self.buf.write(data)
        self._pad()

    def _pad(self):
        self.buf.write(b'\0' * (-self.buf.tell() % 4))

    def dir(self, name, mode=0o755):
        parts = name.strip('/').split('/')
        for i in range(1, len(parts) + 1):
            self._entry('/'.join(parts[:i]), 0o040000 | mode, nlink=2)

    def file(self, name, data, mode=0o644):
        self.dir(os.path.dirname(name.strip('/')) or '.')
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name, target):
        self.dir(os.path.dirname(name.strip('/')) or '.')
        self._entry(name, 0o120000 | 0o777, target.encode())

    def chardev(self, name, major, minor, mode=0o600):
        self._entry(name, 0o020000 | mode, rdev=(major, minor))

    def finish(self):
        self._entry('TRAILER!!!', 0)
        return self.buf.getvalue()


# -- building -----------------------------------------------------------------

def digest(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b'\0')
    return h.hexdigest()


def build_initrd(busybox, modules, agent_text):
    """The gzip-compressed newc initramfs, as bytes (deterministic)."""
    cpio = CpioWriter()
    for d in ('bin', 'sbin', 'usr/bin', 'usr/sbin', 'proc', 'sys', 'dev',
              'tmp', 'etc', 'root', 'mtp', 'lib/modules/mtp'):
        cpio.dir(d)
    with open(busybox, 'rb') as f:
        cpio.file('bin/busybox', f.read(), 0o755)
    for applet in busybox_applets(busybox):
        if applet != 'bin/busybox':
            cpio.symlink(applet, '/bin/busybox')
    cpio.chardev('dev/console', 5, 1)
    cpio.chardev('dev/null', 1, 3, 0o666)
    loaded = []
    for name, path in modules.items():
        if path is None:
            continue
        cpio.file('lib/modules/mtp/%s.ko' % name, read_module(path))
        loaded.append(name)
    cpio.file('mtp/agent.sh', agent_text, 0o755)
    cpio.file('init', (INIT_TEMPLATE % {'modules': ' '.join(loaded)}
                       ).encode(), 0o755)
    return gzip.compress(cpio.finish(), compresslevel=6, mtime=0)
