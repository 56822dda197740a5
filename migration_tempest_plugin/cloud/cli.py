"""``python -m migration_tempest_plugin.cloud up | down | status |
restart-compute`` (the lead wires the same parser as ``migration-lab
cloud``: see :func:`add_arguments` and :func:`run`)."""

import argparse
import json
import os
import sys

from migration_tempest_plugin.cloud import cloud as cloudlib
from migration_tempest_plugin.cloud import config as cfg
from migration_tempest_plugin import errors
from migration_tempest_plugin.lab import nodes


def add_arguments(parser):
    """Add the cloud's sub-commands to `parser`."""
    sub = parser.add_subparsers(dest='cloud_command', required=True)

    def common(p):
        p.add_argument('--state-dir', default=nodes.DEFAULT_STATE_DIR,
                       help='the lab state folder (default %(default)s, or '
                            '$MIGRATION_LAB_STATE)')
    p = sub.add_parser('up', help='bring the lab and the cloud up (twice '
                                  'is harmless)')
    common(p)
    p.add_argument('--storage', choices=cfg.STORAGE_MODES,
                   help='instance disks: files in each node\'s own '
                        'folder (local, the default), files on the lab\'s '
                        'GlusterFS share (shared), or RBD images in the '
                        'lab\'s Ceph (rbd); on a cloud that is up with '
                        'another, its computes switch to this one (without '
                        '--storage, a cloud that is up keeps its mode)')
    p = sub.add_parser('down', help='stop the cloud, remove its databases, '
                                    'queues and files, and the lab')
    common(p)
    p.add_argument('--keep-lab', action='store_true',
                   help='leave the lab nodes up (nova\'s guests and '
                        'instance files are removed)')
    p = sub.add_parser('status', help='each service and compute')
    common(p)
    p.add_argument('--json', action='store_true')
    p = sub.add_parser('restart-compute',
                       help='restart one nova-compute with its nova.conf as '
                            'it is now, and wait until it reports')
    common(p)
    p.add_argument('name', help='compute host, e.g. lab-n1')
    p.add_argument('--no-wait', action='store_true',
                   help='return once the new process has started, as '
                        'systemctl restart does (the tests wait for its '
                        'report themselves)')
    # A host that fails and comes back, for the evacuate tests; they reach
    # these through the compute hosts file, over SSH into the node.
    for name, text in (
            ('stop-compute', 'stop one nova-compute'),
            ('start-compute', 'start one nova-compute again'),
            ('kill-libvirtd', "SIGKILL one node's libvirtd, as a host that "
                              'fails (its guests\' QEMUs are left alone)'),
            ('start-libvirtd', "start one node's libvirtd again and wait "
                               'until it answers')):
        p = sub.add_parser(name, help=text)
        common(p)
        p.add_argument('name', help='compute host, e.g. lab-n1')
    return parser


def run(args):
    """Run parsed arguments; return the exit status."""
    if os.geteuid() != 0:
        print('cloud: needs root (the lab\'s namespaces, MariaDB, '
              'RabbitMQ)', file=sys.stderr)
        return 1
    try:
        if args.cloud_command == 'up':
            return cloudlib.Cloud(args.state_dir, args.storage).up()
        if args.cloud_command == 'down':
            return cloudlib.Cloud(args.state_dir).down(keep_lab=args.keep_lab)
        if args.cloud_command == 'status':
            status = cloudlib.Cloud(args.state_dir).status()
            if args.json:
                print(json.dumps(status, indent=2, sort_keys=True))
            else:
                print(cloudlib.format_status(status))
            return 0 if status['up'] else 3
        if args.cloud_command == 'restart-compute':
            c = cloudlib.Cloud(args.state_dir)
            c.restart_compute(args.name, wait=not args.no_wait)
            print('cloud: %s restarted%s' % (
                args.name, '' if args.no_wait else ' and reporting'))
            return 0
        host_steps = {'stop-compute': 'stop_compute',
                      'start-compute': 'start_compute',
                      'kill-libvirtd': 'kill_libvirtd',
                      'start-libvirtd': 'start_libvirtd'}
        if args.cloud_command in host_steps:
            c = cloudlib.Cloud(args.state_dir)
            getattr(c, host_steps[args.cloud_command])(args.name)
            print('cloud: %s: %s done' % (args.name, args.cloud_command))
            return 0
    except errors.Error as exc:
        print('cloud: ERROR: %s' % exc, file=sys.stderr)
        return 1
    return 2


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m migration_tempest_plugin.cloud',
        description='The lab cloud: keystone, placement, glance, neutron '
                    'and nova on the two lab nodes.')
    add_arguments(parser)
    return run(parser.parse_args(argv))
