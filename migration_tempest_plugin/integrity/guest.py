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
agent.sh (:mod:`initramfs`); the test disk is the raw base image of
:mod:`migration_tempest_plugin.integrity.blocks`.

Nothing is downloaded.  A build is cached in its folder, keyed by a digest
of every input.  :mod:`smoke` boots it on its own.
"""

import collections
import json
import os

from migration_tempest_plugin import common
from migration_tempest_plugin.integrity import blocks
from migration_tempest_plugin.integrity import checker
from migration_tempest_plugin.integrity import initramfs

BUILDER_VERSION = 2
DEFAULT_CMDLINE = 'console=ttyS0 quiet loglevel=0'
AGENT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          'agent.sh')

GuestImage = collections.namedtuple('GuestImage', 'kernel initrd cmdline')
# The kernel option that starts a second agent on the ephemeral disk of a
# flavor that has one (the tempest tests' several-disks flavor).
SECOND_DISK_OPTION = 'mtp.disk2=/dev/vdb'


def build_guest(out_dir, kernel=None, modules_dir=None, busybox=None,
                agent=AGENT_PATH, cmdline=DEFAULT_CMDLINE):
    """Build (or reuse) the guest in *out_dir*; return a GuestImage.

    The kernel is copied to ``out_dir/vmlinuz`` and the initramfs written
    to ``out_dir/initrd.img``.  A manifest records a digest of every input;
    when it matches, the files are reused as they are.
    """
    if kernel is None:
        kernel, release = initramfs.find_kernel()
    else:
        release = os.path.basename(kernel).split('-', 1)[-1]
    if modules_dir is None:
        modules_dir = os.path.join('/lib/modules', release)
    busybox = busybox or initramfs.find_busybox()
    modules = initramfs.find_modules(modules_dir)
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
                mod_digests.append(name + '=' + initramfs.digest(f.read()))
    fingerprint = initramfs.digest(BUILDER_VERSION, initramfs.INIT_TEMPLATE,
                                   kernel_data, busybox_data, agent_text,
                                   *mod_digests)
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
            old.get('initrd_sha256') == common.file_sha256(initrd_out)):
        return image
    common.atomic_write(kernel_out, kernel_data)
    common.atomic_write(initrd_out, initramfs.build_initrd(
        busybox, modules, agent_text))
    common.atomic_write(manifest, json.dumps({
        'fingerprint': fingerprint,
        'kernel_source': kernel,
        'release': release,
        'modules': {n: p for n, p in modules.items()},
        'busybox': busybox,
        'agent': agent,
        'initrd_sha256': common.file_sha256(initrd_out),
    }, indent=2, sort_keys=True).encode())
    return image


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
