"""Where a cinder volume's bytes live, from what cinder's admin API says
about it, so that a compute host can read them back (hosts.access).

Pure: the caller gives the volume as the admin sees it (GET
/volumes/{id}: ``os-vol-host-attr:host`` and
``os-vol-mig-status-attr:name_id``) and cinder's pools with their
capabilities (GET /scheduler-stats/get_pools?detail=True).

* RBD backend (cinder.volume.drivers.rbd.RBDDriver): the image
  ``<rbd_pool>/volume-<name id>``; the pool is the last field of the
  backend's ``location_info`` (``cluster:conf:fsid:user:pool``).  Any
  compute host with a ceph.conf and a keyring reads it (``rbd export``).
* LVM backend (cinder.volume.drivers.lvm.LVMVolumeDriver, devstack's
  default): the logical volume ``/dev/<vg>/volume-<name id>`` on the
  volume host, from ``location_info``
  (``LVMVolumeDriver:<host>:<vg>:<lvm type>:<mirrors>``); it can be read
  only when that host is one the tests reach.
* anything else cannot be read back: the test skips, saying why.

The name id is the volume's own id unless a migration of the volume left
it on the back end under the id of the volume it was migrated to (cinder
keeps the API id and records the other as ``name_id``; the RBD and LVM
drivers do so for an attached volume, whose data nova's swap moved).
"""

import dataclasses

from migration_tempest_plugin import errors
from migration_tempest_plugin.hosts import access

# cinder's [DEFAULT] volume_name_template.
VOLUME_NAME = 'volume-%s'


class VolumeNotReadable(errors.Error):
    """The tests cannot read this volume back (the reason is the text)."""


@dataclasses.dataclass(frozen=True)
class VolumeLocation:
    # Where to read it: a compute host's name, or None for any of them
    # (an RBD image is reachable from every host with the cluster's conf).
    host: object
    source: object
    backend: str


def name_id(volume):
    return volume.get('os-vol-mig-status-attr:name_id') or volume['id']


def _pool_of(volume, pools):
    host = volume.get('os-vol-host-attr:host')
    if not host:
        raise VolumeNotReadable(
            'cinder gives no os-vol-host-attr:host for volume %s (not an '
            'admin view?)' % volume['id'])
    backend = host.split('#', 1)[0]
    exact = [p for p in pools if p.get('name') == host]
    same_backend = [p for p in pools
                    if p.get('name', '').split('#', 1)[0] == backend]
    found = exact or same_backend
    if not found:
        raise VolumeNotReadable(
            'no cinder pool is named %s (pools: %s)' % (
                host, ', '.join(p.get('name', '?') for p in pools) or
                'none'))
    return host, found[0]


def locate(volume, pools, rbd_user='admin', ceph_conf='/etc/ceph/ceph.conf',
           hosts=()):
    """The VolumeLocation of `volume`; `hosts` are the names of the hosts
    the tests reach.  Raises VolumeNotReadable with the reason."""
    host, pool = _pool_of(volume, pools)
    caps = pool.get('capabilities') or {}
    info = caps.get('location_info') or ''
    image = VOLUME_NAME % name_id(volume)
    fields = info.split(':')
    protocol = (caps.get('storage_protocol') or '').lower()
    if protocol in ('ceph', 'rbd') or (len(fields) == 5 and
                                       fields[0] != 'LVMVolumeDriver'):
        if len(fields) != 5 or not fields[4]:
            raise VolumeNotReadable(
                'the RBD backend of volume %s (%s) gives no pool in its '
                'location_info %r' % (volume['id'], host, info))
        return VolumeLocation(None, access.RbdImage(
            fields[4], image, rbd_user, ceph_conf), host)
    if fields[0] == 'LVMVolumeDriver' and len(fields) >= 3:
        volume_host, group = fields[1], fields[2]
        if volume_host not in hosts:
            raise VolumeNotReadable(
                'volume %s is a logical volume of %s on %s, which is not in '
                '[migration] compute_hosts_file (the tests read volumes on '
                'the hosts they reach)' % (volume['id'], group,
                                           volume_host))
        return VolumeLocation(volume_host, access.BlockDevice(
            '/dev/%s/%s' % (group, image)), host)
    raise VolumeNotReadable(
        'volume %s is on cinder backend %s (storage protocol %s, '
        'location_info %r), which the tests cannot read back: only RBD '
        'and LVM volumes' % (volume['id'], host, protocol or '?', info))
