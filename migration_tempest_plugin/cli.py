"""migration-lab: the flag model on the command line, and the embedded lab."""

import argparse
import logging
import sys

from migration_tempest_plugin.cloud import cli as cloud_cli
from migration_tempest_plugin import errors
from migration_tempest_plugin import flags
from migration_tempest_plugin.lab import commands as lab_commands
from migration_tempest_plugin.lab import storage as storagelib
from migration_tempest_plugin import storage_modes


class UsageError(errors.Error):
    """Bad input: reported in one line, exit status 2."""


def cmd_flags_decode(args):
    print(flags.to_text(flags.parse(args.value)))


def cmd_flags_encode(args):
    print('0x%x' % flags.parse(args.value))


def cmd_flags_nova(args):
    options = flags.NovaOptions(
        live_migration_tunnelled=args.tunnelled,
        live_migration_with_native_tls=args.native_tls,
        live_migration_permit_post_copy=args.post_copy,
        live_migration_permit_auto_converge=args.auto_converge,
        live_migration_parallel_connections=args.parallel)
    print(flags.to_text(flags.nova_flags(options, block_migration=args.block,
                                         paused=args.paused)))


def cmd_flags_check(args):
    expectation = storagelib.expect(flags.parse(args.flags), args.storage,
                                    via_nova=args.via_nova)
    print(expectation)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('not an integer: %r' % text)
    if value < 1:
        raise argparse.ArgumentTypeError('must be at least 1: %d' % value)
    return value


def _add_flag_commands(sub):
    p = sub.add_parser('flags', help='decode flags, nova policy, safety')
    fsub = p.add_subparsers(dest='flags_command', required=True)

    d = fsub.add_parser('decode', help='number or names -> names')
    d.add_argument('value', help="e.g. 0x8b, 139 or 'LIVE|PEER2PEER'")
    d.set_defaults(func=cmd_flags_decode)

    e = fsub.add_parser('encode', help='names -> number')
    e.add_argument('value')
    e.set_defaults(func=cmd_flags_encode)

    n = fsub.add_parser('nova', help='the flags nova 34 passes to libvirt')
    n.add_argument('--block', action='store_true',
                   help='a block migration (local disks are copied)')
    n.add_argument('--tunnelled', action='store_true')
    n.add_argument('--native-tls', action='store_true')
    n.add_argument('--post-copy', action='store_true')
    n.add_argument('--auto-converge', action='store_true')
    n.add_argument('--parallel', type=_positive_int, default=1, metavar='N',
                   help='live_migration_parallel_connections')
    n.add_argument('--paused', action='store_true',
                   help='the instance is paused')
    n.set_defaults(func=cmd_flags_nova)

    c = fsub.add_parser('check', help='expected outcome on a storage kind')
    c.add_argument('flags')
    c.add_argument('--storage', required=True,
                   help='a storage mode: %s' % ', '.join(
                       storage_modes.NAMES))
    c.add_argument('--via-nova', action='store_true',
                   help="apply nova's pre-checks first")
    c.set_defaults(func=cmd_flags_check)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line, like every other error of this command.
        raise UsageError(message)


def build_parser():
    parser = _Parser(prog='migration-lab', description=__doc__)
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='diagnostics on stderr: every command, process '
                             'and wait (progress lines are always shown)')
    sub = parser.add_subparsers(dest='command', required=True,
                                parser_class=_Parser)
    _add_flag_commands(sub)
    lab_commands.add_commands(sub)
    cloud = sub.add_parser('cloud', help='the lab cloud: real OpenStack '
                                         'services on the lab nodes')
    cloud_cli.add_arguments(cloud)
    cloud.set_defaults(func=cloud_cli.run)
    return parser


def setup_logging(verbose):
    """Warnings always reach stderr; with --verbose, the debug trail too.
    Progress lines are printed, not logged, so that they read the same."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        stream=sys.stderr,
        format=('%(asctime)s %(name)s: %(message)s' if verbose
                else 'migration-lab: %(levelname)s: %(message)s'))


def main(argv=None):
    parser = build_parser()
    try:
        args = lab_commands.finish_args(parser.parse_args(argv))
        setup_logging(args.verbose)
        return args.func(args) or 0
    except UsageError as exc:
        print('migration-lab: error: %s' % exc, file=sys.stderr)
        return 2
    except errors.Error as exc:
        print('migration-lab: error: %s' % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('migration-lab: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
