"""The registry of the lab's storage modes: one line per mode.

A mode is a module of ``migration_tempest_plugin/lab/storage/`` named like
the mode (``shared-nolock`` -> ``shared_nolock.py``), holding one class
behind the interface of ``lab/storage/base.py``; the lab finds it through
this table.  The table itself is pure data, so that what tempest loads (the
plugin's options) and the lab cloud read the same names without importing
the lab.
"""

import dataclasses

from migration_tempest_plugin import errors


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    # The plugin's [migration] storage of a cloud whose instances path is
    # on this mode, with that choice's help ('' when no cloud runs on it).
    plugin_kind: tuple = ()
    aliases: tuple = ()

    @property
    def module(self):
        return self.name.replace('-', '_')


REGISTRY = (
    Entry('local', plugin_kind=(
        'local', 'each compute host has its own instances path; live '
                 'migration copies the disks')),
    Entry('shared', plugin_kind=(
        'nfs', 'the instances path is one NFS share mounted on every '
               'compute host')),
    Entry('shared-nolock', aliases=('nfs-nolock',)),
    Entry('nfs'),
    Entry('rbd', plugin_kind=(
        'rbd', 'instance disks are RBD images in one Ceph cluster (nova '
               '[libvirt] images_type = rbd; the instances path is each '
               "host's own); live migration copies no disk")),
)

# The mode names, in the matrix's order.
NAMES = tuple(entry.name for entry in REGISTRY)


class UnknownMode(errors.Error, ValueError):
    """A name that no registered storage mode answers to."""


def entry(name):
    """The registry's entry of `name` (a mode's name or alias, any case)."""
    text = str(name).strip().lower()
    for e in REGISTRY:
        if text == e.name or text in e.aliases:
            return e
    raise UnknownMode('unknown storage mode %r (known: %s)' % (
        name, ', '.join(NAMES)))


def cloud_modes():
    """{mode: the plugin's [migration] storage} of the modes a cloud's
    instances path can be on."""
    return {e.name: e.plugin_kind[0] for e in REGISTRY if e.plugin_kind}


def plugin_kinds():
    """The plugin's [migration] storage choices, as (kind, help), once
    each, in the registry's order."""
    out = {}
    for e in REGISTRY:
        if e.plugin_kind:
            out.setdefault(*e.plugin_kind)
    return list(out.items())


@dataclasses.dataclass(frozen=True)
class PluginKind:
    """What a [migration] storage kind means for the tests through nova."""
    name: str
    # nova counts the instance's disks as shared between the hosts
    # (LibvirtDriver._is_shared_block_storage): block_migration=auto
    # chooses a live migration without a disk copy, a requested block
    # migration is refused ("Block migration can not be used with shared
    # storage."), no NON_SHARED_* flag may reach libvirt, and an
    # evacuation keeps the disk (instance_on_disk).
    shared_disks: bool
    # One instances path seen by every host (the guest's console.log and
    # the instance folder are one file, one folder).
    shared_instances_path: bool
    # Where the instance disks live: 'file' (under the instances path) or
    # 'rbd' (nova's images_type = rbd: <images_rbd_pool>/<uuid>_<disk>).
    disks_in: str = 'file'


# nova's libvirt driver counts RBD as shared block storage: Rbd is the only
# image backend whose is_shared_block_storage() is True
# (nova/virt/libvirt/imagebackend.py), and _is_shared_block_storage() is
# True when both hosts run it; the instances path stays each host's own.
PLUGIN_KINDS = {
    'local': PluginKind('local', shared_disks=False,
                        shared_instances_path=False),
    'nfs': PluginKind('nfs', shared_disks=True, shared_instances_path=True),
    'rbd': PluginKind('rbd', shared_disks=True, shared_instances_path=False,
                      disks_in='rbd'),
}


def plugin_kind(kind):
    """The PluginKind of a [migration] storage value."""
    try:
        return PLUGIN_KINDS[kind]
    except KeyError:
        raise UnknownMode('unknown [migration] storage %r (known: %s)' % (
            kind, ', '.join(PLUGIN_KINDS)))


def shared_disks(kind):
    return plugin_kind(kind).shared_disks


def shared_instances_path(kind):
    return plugin_kind(kind).shared_instances_path
