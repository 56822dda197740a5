"""Build the integrity guest with the plugin's own builder.

Usage: build_guest.py OUT_DIR KERNEL

Prints one JSON object: kernel, initrd, cmdline, disk, second_disk_option
(the kernel option that starts the agent on a flavor's ephemeral disk).  Uses
migration_tempest_plugin.integrity.guest (build_guest, write_base_disk), which
must be importable (PYTHONPATH pointing at the plugin's checkout).
"""

import json
import os
import sys

from migration_tempest_plugin.integrity import guest


def main(out_dir, kernel):
    image = guest.build_guest(out_dir, kernel=kernel)
    disk = os.path.join(out_dir, 'disk.raw')
    guest.write_base_disk(disk)
    result = dict(image._asdict(), disk=disk,
                  second_disk_option=guest.SECOND_DISK_OPTION)
    print(json.dumps(result))


if __name__ == '__main__':
    main(*sys.argv[1:3])
