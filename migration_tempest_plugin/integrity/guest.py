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

"""The integrity guest: a host kernel, and a busybox initramfs that runs
agent.sh.

Nothing is downloaded.  The initramfs (newc cpio, gzip) is written by this
module from the host's busybox-static, the cloud kernel's virtio modules,
an /init script and the integrity workload; the test disk is the raw base
image of :mod:`migration_tempest_plugin.integrity.blocks`.

``python -m migration_tempest_plugin.integrity.guest smoke DIR`` boots the
guest under TCG on a qcow2 overlay, lets it write, kills it and checks the
disk.
"""

import argparse
import collections
import glob
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from migration_tempest_plugin import errors
from migration_tempest_plugin.integrity import blocks
from migration_tempest_plugin.integrity import checker
from migration_tempest_plugin.integrity import history

BUILDER_VERSION = 2
DEFAULT_CMDLINE = 'console=ttyS0 quiet loglevel=0'
# insmod order matters: each module needs the ones before it.
VIRTIO_MODULES = ('virtio_ring', 'virtio', 'virtio_pci_modern_dev',
                  'virtio_pci_legacy_dev', 'virtio_pci', 'virtio_blk')
AGENT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          'agent.sh')
MODULE_SUFFIXES = ('.ko', '.ko.xz', '.ko.zst', '.ko.gz')

GuestImage = collections.namedtuple('GuestImage', 'kernel initrd cmdline')
# The kernel option that starts a second agent on the ephemeral disk of a
# flavor that has one (the tempest tests' several-disks flavor).
SECOND_DISK_OPTION = 'mtp.disk2=/dev/vdb'


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

def _digest(*parts):
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


def build_guest(out_dir, kernel=None, modules_dir=None, busybox=None,
                agent=AGENT_PATH, cmdline=DEFAULT_CMDLINE):
    """Build (or reuse) the guest in *out_dir*; return a GuestImage.

    The kernel is copied to ``out_dir/vmlinuz`` and the initramfs written
    to ``out_dir/initrd.img``.  A manifest records a digest of every input;
    when it matches, the files are reused as they are.
    """
    if kernel is None:
        kernel, release = find_kernel()
    else:
        release = os.path.basename(kernel).split('-', 1)[-1]
    if modules_dir is None:
        modules_dir = os.path.join('/lib/modules', release)
    busybox = busybox or find_busybox()
    modules = find_modules(modules_dir)
    with open(agent, 'rb') as f:
        agent_text = f.read()
    with open(kernel, 'rb') as f:
        kernel_data = f.read()
    with open(busybox, 'rb') as f:
        busybox_data = f.read()
    mod_digests = []
    for name, path in modules.items():
        if path is None:
            mod_digests.append(name + '=builtin')
        else:
            with open(path, 'rb') as f:
                mod_digests.append(name + '=' + _digest(f.read()))
    fingerprint = _digest(BUILDER_VERSION, INIT_TEMPLATE, kernel_data,
                          busybox_data, agent_text, *mod_digests)
    os.makedirs(out_dir, exist_ok=True)
    kernel_out = os.path.join(out_dir, 'vmlinuz')
    initrd_out = os.path.join(out_dir, 'initrd.img')
    manifest = os.path.join(out_dir, 'guest.json')
    image = GuestImage(kernel_out, initrd_out, cmdline)
    try:
        with open(manifest) as f:
            old = json.load(f)
    except (OSError, ValueError):
        old = {}
    if (old.get('fingerprint') == fingerprint and
            os.path.exists(kernel_out) and os.path.exists(initrd_out) and
            old.get('initrd_sha256') == _file_digest(initrd_out)):
        return image
    _atomic_write(kernel_out, kernel_data)
    _atomic_write(initrd_out, build_initrd(busybox, modules, agent_text))
    _atomic_write(manifest, json.dumps({
        'fingerprint': fingerprint,
        'kernel_source': kernel,
        'release': release,
        'modules': {n: p for n, p in modules.items()},
        'busybox': busybox,
        'agent': agent,
        'initrd_sha256': _file_digest(initrd_out),
    }, indent=2, sort_keys=True).encode())
    return image


def _file_digest(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write(path, data):
    tmp = '%s.tmp-%d' % (path, os.getpid())
    with open(tmp, 'wb') as f:
        f.write(data)
    os.replace(tmp, path)


def write_base_disk(path, static_blocks=blocks.DEFAULT_STATIC_BLOCKS,
                    work_blocks=blocks.DEFAULT_WORK_BLOCKS, image_id=None,
                    zero_every=0):
    """Write (or reuse) the pre-filled raw test disk; return its Layout.

    An existing file is reused when it is a pristine image of the same
    sizes and zeroing (and image id, when one is given).
    """
    if os.path.exists(path):
        with open(path, 'rb') as f:
            data = f.read()
        label, _ = blocks.parse_label(data[:blocks.BLOCK_SIZE])
        if (label is not None and label.static_count == static_blocks and
                label.work_count == work_blocks and
                label.zero_every == zero_every and
                image_id in (None, label.image_id) and
                len(data) == label.size_bytes and
                checker.check(None, data).verdict == checker.INTACT):
            return label
    return blocks.write_base_image(path, static_blocks, work_blocks, image_id,
                                   zero_every)


# -- smoke test ---------------------------------------------------------------

def qemu_command(guest, disk, console, qemu='qemu-system-x86_64',
                 memory=128, extra_append=''):
    """Command line that boots *guest* under TCG with *disk* as vda."""
    append = guest.cmdline + (' ' + extra_append if extra_append else '')
    return [qemu, '-accel', 'tcg', '-m', str(memory), '-nodefaults',
            '-display', 'none', '-no-reboot',
            '-kernel', guest.kernel, '-initrd', guest.initrd,
            '-append', append,
            '-drive', 'file=%s,if=virtio,cache=none,format=qcow2' % disk,
            '-serial', 'file:%s' % console]


def smoke(work_dir, seconds=15.0, qemu='qemu-system-x86_64', keep=False,
          extra_append=''):
    """Boot, write for *seconds*, kill, check; return a report dict.

    Expects INTACT on the disk as left, then DATA-LOSS after one byte of an
    acknowledged block is flipped.  Raises AssertionError otherwise.
    """
    os.makedirs(work_dir, exist_ok=True)
    guest = build_guest(os.path.join(work_dir, 'guest'))
    base = os.path.join(work_dir, 'base.raw')
    layout = write_base_disk(base)
    overlay = os.path.join(work_dir, 'overlay.qcow2')
    flat = os.path.join(work_dir, 'flat.raw')
    console = os.path.join(work_dir, 'console.log')
    for p in (overlay, flat, console):
        if os.path.exists(p):
            os.unlink(p)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw',
                    '-b', os.path.abspath(base), overlay], check=True)
    cmd = qemu_command(guest, overlay, console, qemu,
                       extra_append=extra_append)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    first_ack = None
    try:
        while time.monotonic() - t0 < seconds + 60:
            if proc.poll() is not None:
                raise AssertionError('qemu exited early: %s' %
                                     proc.stderr.read().decode())
            text = _read(console)
            if first_ack is None and history.ack_count(text):
                first_ack = time.monotonic()
            if history.fatal_line(text):
                break
            if first_ack is not None and \
                    time.monotonic() - first_ack >= seconds:
                break
            time.sleep(0.05)
    finally:
        t_kill = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    subprocess.run(['qemu-img', 'convert', '-O', 'raw', overlay, flat],
                   check=True)
    hist = history.parse(_read(console))
    with open(flat, 'rb') as f:
        data = bytearray(f.read())
    res = checker.check(hist, bytes(data))
    report = {
        'boot_to_first_ack_s': round(first_ack - t0, 2)
        if first_ack else None,
        'acked_writes': hist.acked_writes,
        'writes_per_s': round((hist.acked_writes - 1) /
                              (t_kill - first_ack), 1)
        if first_ack and hist.acked_writes > 1 else 0.0,
        'notes': hist.notes,
        'verdict': res.verdict,
        'message': res.message,
    }
    if res.verdict != checker.INTACT:
        raise AssertionError('disk not intact: %s' % res.message)
    if hist.acked_writes < 1:
        raise AssertionError('no write was acknowledged')
    # flip one byte of the block of the last acknowledged write
    idx = layout.seq_block(hist.last_seq)
    pos = idx * blocks.BLOCK_SIZE + 1000
    data[pos] ^= 0x01
    bad = checker.check(hist, bytes(data))
    report['flipped'] = {'offset': pos, 'verdict': bad.verdict,
                         'message': bad.message}
    if bad.verdict != checker.DATA_LOSS or \
            bad.findings[0].first_byte != pos:
        raise AssertionError('flipped byte not found: %s' % bad.message)
    if not keep:
        for p in (overlay, flat):
            os.unlink(p)
    return report


def _read(path):
    try:
        with open(path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')
    except OSError:
        return ''


def main(argv=None):
    p = argparse.ArgumentParser(prog='python -m '
                                'migration_tempest_plugin.integrity.guest')
    sub = p.add_subparsers(dest='cmd', required=True)
    b = sub.add_parser('build', help='build kernel + initramfs')
    b.add_argument('out_dir')
    d = sub.add_parser('disk', help='write the raw base disk')
    d.add_argument('path')
    d.add_argument('--static-blocks', type=int,
                   default=blocks.DEFAULT_STATIC_BLOCKS)
    d.add_argument('--work-blocks', type=int,
                   default=blocks.DEFAULT_WORK_BLOCKS)
    s = sub.add_parser('smoke', help='boot, write, kill, check')
    s.add_argument('work_dir')
    s.add_argument('--seconds', type=float, default=15.0)
    s.add_argument('--keep', action='store_true')
    s.add_argument('--append', default='', help='extra kernel arguments')
    args = p.parse_args(argv)
    if args.cmd == 'build':
        print(json.dumps(build_guest(args.out_dir)._asdict()))
    elif args.cmd == 'disk':
        print(json.dumps(write_base_disk(args.path, args.static_blocks,
                                         args.work_blocks).to_dict()))
    else:
        print(json.dumps(smoke(args.work_dir, args.seconds, keep=args.keep,
                               extra_append=args.append), indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
