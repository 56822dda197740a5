"""libvirt migration flags, nova's policy for them, libvirt's refusals of
flag combinations, and the outcomes a migration can be expected to have
(each storage mode's rules are in ``lab/storage/``).

Pure: nothing here touches a host. The vocabulary comes from libvirt-python
when it is importable; FLAG_TABLE is the fallback, kept equal to libvirt-python
by a unit test.
"""

import collections
import dataclasses
import enum

from migration_tempest_plugin import errors

try:
    import libvirt
except ImportError:  # the tempest plugin does not need libvirt-python
    libvirt = None

PREFIX = 'VIR_MIGRATE_'

# virDomainMigrateFlags, libvirt 9.x-11.x (libvirt-domain.h).
FLAG_TABLE = collections.OrderedDict([
    ('LIVE', 1 << 0),
    ('PEER2PEER', 1 << 1),
    ('TUNNELLED', 1 << 2),
    ('PERSIST_DEST', 1 << 3),
    ('UNDEFINE_SOURCE', 1 << 4),
    ('PAUSED', 1 << 5),
    ('NON_SHARED_DISK', 1 << 6),
    ('NON_SHARED_INC', 1 << 7),
    ('CHANGE_PROTECTION', 1 << 8),
    ('UNSAFE', 1 << 9),
    ('OFFLINE', 1 << 10),
    ('COMPRESSED', 1 << 11),
    ('ABORT_ON_ERROR', 1 << 12),
    ('AUTO_CONVERGE', 1 << 13),
    ('RDMA_PIN_ALL', 1 << 14),
    ('POSTCOPY', 1 << 15),
    ('TLS', 1 << 16),
    ('PARALLEL', 1 << 17),
    ('NON_SHARED_SYNCHRONOUS_WRITES', 1 << 18),
    ('POSTCOPY_RESUME', 1 << 19),
    ('ZEROCOPY', 1 << 20),
])


def libvirt_flag_table():
    """The VIR_MIGRATE_* flags libvirt-python knows, or None without it."""
    if libvirt is None:
        return None
    # VIR_MIGRATE_PARAM_* are typed-parameter names (strings), not flags.
    return {name[len(PREFIX):]: value for name, value in vars(libvirt).items()
            if name.startswith(PREFIX) and isinstance(value, int)
            and not name.startswith(PREFIX + 'PARAM_')}


def _vocabulary():
    table = dict(FLAG_TABLE)
    table.update(libvirt_flag_table() or {})
    return table


FLAGS = _vocabulary()
_NAMES_BY_VALUE = {value: name for name, value in FLAGS.items()}


class FlagError(errors.Error, ValueError):
    """Input that does not name a set of migration flags."""


def parse(text):
    """'LIVE|PEER2PEER', 'VIR_MIGRATE_LIVE,P2P', '3' or '0x3' -> int."""
    if isinstance(text, int):
        return _check_value(text)
    text = str(text).strip()
    if not text:
        raise FlagError('empty flag set')
    try:
        number = int(text, 0)
    except ValueError:
        number = None
    if number is not None:
        return _check_value(number)
    value = 0
    for word in text.replace(',', '|').replace('+', '|').split('|'):
        name = word.strip().upper()
        if name.startswith(PREFIX):
            name = name[len(PREFIX):]
        if name not in FLAGS:
            raise FlagError('unknown migration flag %r' % word.strip())
        value |= FLAGS[name]
    return value


def _check_value(value):
    if value < 0:
        raise FlagError('flags cannot be negative: %d' % value)
    unknown = value & ~sum(FLAGS.values())
    if unknown:
        raise FlagError('unknown flag bits 0x%x' % unknown)
    return value


def names(value):
    """int -> ['LIVE', 'PEER2PEER', ...] in libvirt's bit order."""
    value = _check_value(value)
    return [_NAMES_BY_VALUE[bit] for bit in sorted(_NAMES_BY_VALUE)
            if value & bit]


def to_text(value):
    return '|'.join(names(value)) or '0'


def has(value, *flag_names):
    return all(value & FLAGS[name] for name in flag_names)


# --- nova's policy (nova/virt/libvirt/driver.py, nova 34) ------------------

NOVA_BASE = parse('LIVE|PEER2PEER|UNDEFINE_SOURCE|PERSIST_DEST')

TUNNELLED_WITH_TLS_MESSAGE = (
    "Setting both 'live_migration_tunnelled' and "
    "'live_migration_with_native_tls' at the same time is invalid. If you "
    "have the relevant libvirt and QEMU versions, and TLS configured in your "
    "environment, pick 'live_migration_with_native_tls'.")


class NovaRefusal(errors.Error):
    """nova-compute refuses to start with these options (exception.Invalid)."""


@dataclasses.dataclass(frozen=True)
class NovaOptions:
    """The [libvirt] options of nova-compute that decide the flags."""
    live_migration_tunnelled: bool = False
    live_migration_with_native_tls: bool = False
    live_migration_permit_post_copy: bool = False
    live_migration_permit_auto_converge: bool = False
    live_migration_parallel_connections: int = 1


def nova_flags(options, block_migration=False, paused=False,
               copies_disks=True):
    """The flags nova 34 hands to migrateToURI3 for one migration.

    block_migration: migrate_data.block_migration (nova chose or was told
    to copy local disks). paused: the instance is PAUSED. copies_disks:
    _live_migration_copy_disk_paths() found at least one disk to copy.
    """
    if options.live_migration_parallel_connections < 1:
        raise NovaRefusal('live_migration_parallel_connections must be >= 1'
                          ', got %d'
                          % options.live_migration_parallel_connections)
    # init_host() rejects this pair before any migration can happen.
    if (options.live_migration_tunnelled
            and options.live_migration_with_native_tls):
        raise NovaRefusal(TUNNELLED_WITH_TLS_MESSAGE)
    # _parse_migration_flags(): base set, then the handlers in their order.
    flags = NOVA_BASE
    if options.live_migration_tunnelled:
        flags |= FLAGS['TUNNELLED']
    if options.live_migration_with_native_tls:
        flags |= FLAGS['TLS']
    if options.live_migration_permit_post_copy:
        flags |= FLAGS['POSTCOPY']
    # Auto-converge only when post-copy is not permitted.
    elif options.live_migration_permit_auto_converge:
        flags |= FLAGS['AUTO_CONVERGE']
    if options.live_migration_parallel_connections > 1:
        flags |= FLAGS['PARALLEL']
    if block_migration:
        flags |= FLAGS['NON_SHARED_INC']
    # _live_migration_operation(): post-copy cannot run for a paused guest.
    if paused:
        flags &= ~FLAGS['POSTCOPY']
    # Guest.migrate(): an empty migrate_disks with NON_SHARED_INC would copy
    # every writable disk, volumes included (bug #1719362, ea9bf5216b), so
    # nova clears the flag. migrate_disks is also empty when tunnelled:
    # _live_migration_operation() drops it, as libvirt cannot select disks
    # in a tunnelled migration (bug #1398999). A tunnelled block migration
    # therefore reaches libvirt with no disk copy at all.
    if not copies_disks or options.live_migration_tunnelled:
        flags &= ~FLAGS['NON_SHARED_INC']
    return flags


# --- outcomes and libvirt's own refusals ------------------------------------
# What a flag set does to a disk on a given storage mode is each mode's rule
# (migration_tempest_plugin/lab/storage/); here are the words they share.

class Outcome(str, enum.Enum):
    INTACT = 'INTACT'                      # migrates, data survives
    REFUSED_BY_NOVA = 'REFUSED-BY-NOVA'
    REFUSED_BY_LIBVIRT = 'REFUSED-BY-LIBVIRT'
    DATA_AT_RISK = 'DATA-AT-RISK'          # the seed thread's case
    # A fault stops the migration: the guest runs on at its source with its
    # data, and nothing of it is left on the destination.
    FAILED_SAFE = 'FAILED-SAFE'


@dataclasses.dataclass(frozen=True)
class Expectation:
    outcome: Outcome
    reason: str
    message: str = ''   # the refusing component's own words, when known

    def __str__(self):
        text = '%s: %s' % (self.outcome.value, self.reason)
        if self.message:
            text += ' ("%s")' % self.message
        return text


def libvirt_refusal(flags):
    """libvirt's flag-combination checks (qemu_migration.c, libvirt.c): the
    message of the first that refuses `flags`, or None."""
    rules = [
        (has(flags, 'TUNNELLED') and not has(flags, 'PEER2PEER'),
         'cannot perform tunnelled migration without using peer2peer flag'),
        (has(flags, 'NON_SHARED_DISK', 'NON_SHARED_INC'),
         "Flags 'VIR_MIGRATE_NON_SHARED_DISK' and 'VIR_MIGRATE_NON_SHARED_INC'"
         " are mutually exclusive"),
        (has(flags, 'TUNNELLED', 'PARALLEL'),
         "Flags 'VIR_MIGRATE_TUNNELLED' and 'VIR_MIGRATE_PARALLEL' are "
         "mutually exclusive"),
        (has(flags, 'TUNNELLED', 'POSTCOPY'),
         'post-copy is not supported with tunnelled migration'),
        (has(flags, 'POSTCOPY') and (not has(flags, 'LIVE')
                                     or has(flags, 'PAUSED')),
         'post-copy migration is not supported with non-live or paused '
         'migration'),
        (has(flags, 'ZEROCOPY') and not has(flags, 'PARALLEL'),
         'zero-copy is only available for parallel migration'),
        (has(flags, 'TUNNELLED') and _copies_storage(flags),
         'migration of non-shared storage is not supported with tunnelled '
         'migration and this QEMU'),
    ]
    for broken, message in rules:
        if broken:
            return message
    return None


def _copies_storage(flags):
    return bool(flags & (FLAGS['NON_SHARED_DISK'] | FLAGS['NON_SHARED_INC']))


UNSAFE_MESSAGE = 'Unsafe migration: Migration without shared storage is unsafe'
NO_DISK_MESSAGE = 'Cannot access storage file'
LOCKED_COPY_MESSAGE = ("unable to execute QEMU command 'block-export-add'")
