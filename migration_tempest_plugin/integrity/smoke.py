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

"""The guest on its own: booted by QEMU under TCG on a qcow2 overlay,
left to write, killed, and its disk checked; and the command line of the
guest's builder.

``python -m migration_tempest_plugin.integrity.smoke smoke DIR`` runs it;
``build OUT_DIR`` and ``disk PATH`` build the guest and its base disk.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

from migration_tempest_plugin.integrity import blocks
from migration_tempest_plugin.integrity import checker
from migration_tempest_plugin.integrity import guest as guestlib
from migration_tempest_plugin.integrity import history


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
    guest = guestlib.build_guest(os.path.join(work_dir, 'guest'))
    base = os.path.join(work_dir, 'base.raw')
    layout = guestlib.write_base_disk(base)
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
                                'migration_tempest_plugin.integrity.smoke')
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
        print(json.dumps(guestlib.build_guest(args.out_dir)._asdict()))
    elif args.cmd == 'disk':
        print(json.dumps(guestlib.write_base_disk(
            args.path, args.static_blocks, args.work_blocks).to_dict()))
    else:
        print(json.dumps(smoke(args.work_dir, args.seconds, keep=args.keep,
                               extra_append=args.append), indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
