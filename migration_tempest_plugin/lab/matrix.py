"""The lab's flag matrix: which flag sets run on which storage, and the
cases (a flag set on a storage mode, perhaps with a disk set-up or a fault)
that the case pipeline (:mod:`pipeline`) runs.
"""

import dataclasses

from migration_tempest_plugin import flags
from migration_tempest_plugin.lab import storage as storagelib
from migration_tempest_plugin import storage_modes

NOVA_OPTIONS = {
    'tunnelled': flags.NovaOptions(live_migration_tunnelled=True),
    'tls': flags.NovaOptions(live_migration_with_native_tls=True),
    'post-copy': flags.NovaOptions(live_migration_permit_post_copy=True),
    'auto-converge': flags.NovaOptions(
        live_migration_permit_auto_converge=True),
    'parallel': flags.NovaOptions(live_migration_parallel_connections=4),
}


@dataclasses.dataclass(frozen=True)
class FlagSet:
    name: str
    flags: int
    paused: bool = False      # suspend the guest before migrating
    note: str = ''


def _nova(block, option=None, paused=False):
    options = NOVA_OPTIONS[option] if option else flags.NovaOptions()
    name = 'nova-%s%s%s' % ('block' if block else 'live',
                            '+' + option if option else '',
                            '+paused' if paused else '')
    return FlagSet(name, flags.nova_flags(options, block_migration=block,
                                          paused=paused), paused=paused,
                   note="nova 34's own set")


def _raw(name, text, note):
    return FlagSet(name, flags.parse(text), note=note)


def flag_sets():
    """Every flag set of the matrix, nova's first."""
    sets = [_nova(False), _nova(True)]
    for option in NOVA_OPTIONS:
        sets += [_nova(False, option), _nova(True, option)]
    sets += [
        _nova(False, paused=True), _nova(True, paused=True),
        _raw('raw-non-shared-disk',
             'LIVE|PEER2PEER|UNDEFINE_SOURCE|PERSIST_DEST|NON_SHARED_DISK',
             'full-chain copy; nova never uses it'),
        _raw('raw-compressed',
             'LIVE|PEER2PEER|UNDEFINE_SOURCE|PERSIST_DEST|COMPRESSED',
             'xbzrle RAM compression'),
        _raw('raw-unsafe',
             'LIVE|PEER2PEER|UNDEFINE_SOURCE|PERSIST_DEST|UNSAFE',
             "skips libvirt's shared-storage check"),
        _raw('raw-inc-unsafe',
             'LIVE|PEER2PEER|UNDEFINE_SOURCE|PERSIST_DEST|NON_SHARED_INC'
             '|UNSAFE', "the seed's block set, with the check skipped"),
    ]
    return sets


@dataclasses.dataclass
class Case:
    storage: str
    flag_set: FlagSet
    # 'loss', 'intact' or 'refused' when this case is a control
    control: str = ''
    fault: object = None    # a faults.Fault injected during the migration
    disks: object = None    # a disks.DiskSetup other than the default

    @property
    def id(self):
        return '%s/%s' % (self.storage, self.name)

    @property
    def name(self):
        return self.flag_set.name + ''.join(
            '+' + extra.name for extra in (self.disks, self.fault) if extra)

    @property
    def migrate_disks(self):
        """The disks a disk-copying migration names."""
        return (self.disks and self.disks.copy) or ('vda',)

    def instance_options(self):
        """Keyword arguments of instance.Instance for this case's disk."""
        if not self.disks:
            return {}
        return {'cache': self.disks.cache,
                'base_storage': self.disks.base_storage or self.storage,
                'ephemeral_storage': self.disks.ephemeral_storage or None}

    @property
    def flags(self):
        return self.flag_set.flags

    @property
    def exclusive(self):
        """The case disturbs the whole lab (network, libvirtd): it must
        run alone."""
        return bool(self.fault and self.fault.disturbs_link)

    def expectation(self):
        if self.fault:
            return self.fault.expectation
        if self.disks:
            return self.disks.expectation
        return storagelib.expect(self.flags, self.storage,
                                 paused=self.flag_set.paused)


def all_cases(storages=storage_modes.NAMES, only=None):
    cases = []
    for storage in storages:
        for flag_set in flag_sets():
            case = Case(storage, flag_set)
            if only and not any(word in case.id for word in only):
                continue
            cases.append(case)
    return cases


def smoke_cases(storages=storage_modes.NAMES):
    """nova's live and block sets on each storage mode, where what they do
    does not depend on timing (INTACT or a refusal, not DATA-AT-RISK): the
    lab's nodes, network, storage and the case pipeline, end to end."""
    by_name = {fs.name: fs for fs in flag_sets()}
    cases = [Case(storage, by_name[name]) for storage in storages
             for name in ('nova-live', 'nova-block')]
    return [c for c in cases
            if c.expectation().outcome is not flags.Outcome.DATA_AT_RISK]


def control_cases():
    """The project's proof that the oracle sees what it must see: the seed's
    data loss on storage without cross-host locks (bindfs, and NFSv3 for
    real), and nova's own sets intact on the storage they are meant for.
    On Ceph RBD, nova's block set (NON_SHARED_INC) is refused by the
    destination's libvirt (an RBD disk's name is no file there, and INC
    cannot pre-create its target), so libvirt never copies the disk onto
    itself; the control holds that refusal, with its message and the disk
    intact."""
    by_name = {fs.name: fs for fs in flag_sets()}
    return [
        Case('shared-nolock', by_name['nova-block'], control='loss'),
        Case('shared-nolock', by_name['raw-non-shared-disk'],
             control='loss'),
        Case('nfs', by_name['nova-block'], control='loss'),
        Case('local', by_name['nova-block'], control='intact'),
        Case('shared', by_name['nova-live'], control='intact'),
        Case('nfs', by_name['nova-live'], control='intact'),
        Case('rbd', by_name['nova-block'], control='refused'),
        Case('rbd', by_name['nova-live'], control='intact'),
    ]
