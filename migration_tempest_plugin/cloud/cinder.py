"""cinder for the lab cloud: volumes on the lab's Ceph (RBD driver).

* cinder-api under gunicorn on the lab's address (one of ``cfg.APIS``:
  started, waited for and stopped with the other APIs, ``cloud/apis.py``),
  through our WSGI module ``cloud/cinder_wsgi.py``;
* cinder-scheduler on the host, as nova's control services;
* cinder-volume inside the first lab node (``lab-n1``), next to that node's
  nova-compute, with two RBD back ends: ``ceph`` (pool ``volumes``) and
  ``ceph2`` (pool ``volumes2``).  The second is there so that a retype
  moves an attached volume through nova's swap: between pools of one
  cluster, the RBD driver's own migration refuses an in-use volume and
  cinder falls back to its generic migration, which asks nova to copy the
  disk under the guest.

Why cinder-volume runs in a node and not on the host: the rbd lab storage
mode (``lab/storage/rbd.py``) binds the cluster's ``/etc/ceph`` (ceph.conf
and the keyrings, which the conf finds by their default names) inside each
node only, for nova-compute and QEMU.  In a node, cinder reads the very
files nova reads (``rbd_ceph_conf = /etc/ceph/ceph.conf``, ``client.cinder``
by its default keyring path), and nothing of Ceph is written to the host's
own ``/etc/ceph``; on the host it would need a second conf with host paths
of the keyrings.  The node reaches the monitor at 10.254.0.253 over the lab
bridge, as nova does.  Its host name is ``lab-control``, so the backend is
``lab-control@ceph`` whichever node runs it.

Every cloud storage mode has cinder (the cloud's lab always includes the
rbd mode): volumes are RBD images in pool ``volumes``; nova attaches them
as libvirt network disks (``rbd_user``/``rbd_secret_uuid`` from cinder's
connection info; the secret is defined in each node's libvirtd by the rbd
mode).  With ``cloud up --storage rbd`` nova's instance disks are RBD images
too (pool ``vms``, ``<instance uuid>_disk``): see ``nova.py``.

The rados and rbd Python modules are not on PyPI: ``link_ceph_modules``
symlinks Debian's python3-rados/python3-rbd builds into the venv (one pair
serves cinder and nova).
"""

import collections
import os
import re

from migration_tempest_plugin.cloud import base
from migration_tempest_plugin.cloud import config as cfg

SCHEDULER = 'cinder-scheduler'
VOLUME = 'cinder-volume'
SERVICES = (SCHEDULER, VOLUME)
# (config folder, file under the venv's etc/) copied as they are.
COPIED = (('cinder', 'cinder/api-paste.ini'),
          ('cinder', 'cinder/resource_filters.json'))
# Debian's builds of the Ceph bindings (python3-rados, python3-rbd), for
# the Python 3.11 of Debian 12 (and of the venv).
DEBIAN_DIST = '/usr/lib/python3/dist-packages'
CEPH_MODULES = ('rados', 'rbd')


def conf_path(s):
    return os.path.join(s.etc('cinder'), 'cinder.conf')


def configure(s):
    """(config folder, file name, text) of cinder's files."""
    return [('cinder', 'cinder.conf', cinder_conf(s))]


def backends(s):
    """(back end name, RBD pool) of each of cinder's back ends."""
    return ((cfg.CINDER_BACKEND, s.ceph.volumes_pool),
            (cfg.CINDER_BACKEND2, s.ceph.volumes2_pool))


def backend_host(backend=cfg.CINDER_BACKEND):
    """cinder-volume's service host for `backend`, as `cinder
    service-list` shows it."""
    return '%s@%s' % (cfg.CONTROL_HOST, backend)


def cinder_conf(s):
    """cinder.conf of the three services (one file: they share a host
    name, the database and the queue)."""
    ceph = s.ceph
    sections = collections.OrderedDict()
    default = cfg.common(s, s.path('cinder'))
    default.update([
        ('host', cfg.CONTROL_HOST),
        ('my_ip', s.host),
        ('auth_strategy', 'keystone'),
        ('enabled_backends', ','.join(name for name, _ in backends(s))),
        ('api_paste_config', os.path.join(s.etc('cinder'), 'api-paste.ini')),
        ('resource_query_filters_file', os.path.join(
            s.etc('cinder'), 'resource_filters.json')),
        ('osapi_volume_workers', 1),
        # The scheduler hears of the backend's capacity at once, and a
        # stopped cinder-volume is seen down within 20 s.
        ('report_interval', 5),
        ('service_down_time', 20),
        ('periodic_interval', 30),
        ('graceful_shutdown_timeout', 5),
    ])
    sections['DEFAULT'] = default
    sections['database'] = {'connection': cfg.db_url(s, 'cinder')}
    sections['keystone_authtoken'] = cfg.authtoken(s, 'cinder')
    sections['service_user'] = collections.OrderedDict(
        [('send_service_user_token', True)] +
        list(cfg.service_auth(s, 'cinder').items()))
    # What cinder asks of nova (external events after an extend, a
    # snapshot of an attached volume), as the nova service user.
    nova = cfg.service_auth(s, 'nova')
    nova['interface'] = 'public'
    sections['nova'] = nova
    sections['oslo_concurrency'] = {'lock_path': s.path('cinder', 'lock')}
    sections['oslo_messaging_notifications'] = {'driver': 'noop'}
    sections['coordination'] = {
        'backend_url': 'file://' + s.path('cinder', 'coordination')}
    for name, pool in backends(s):
        sections[name] = rbd_backend(ceph, name, pool)
    # Each privsep context reads its own section: cinder's own
    # (cinder.privsep.sys_admin_pctxt: format checks of a downloaded image,
    # so every volume made from an image) and os-brick's.  Without it the
    # helper is the default 'sudo cinder-rootwrap ...', which is not here.
    helper = os.path.join(s.venv, 'bin', 'privsep-helper')
    for section in ('cinder_sys_admin', 'privsep_osbrick'):
        sections[section] = {'helper_command': helper}
    return cfg.render_ini(sections, cfg.HEADER)


def rbd_backend(ceph, name, pool):
    """The section of one RBD back end."""
    return collections.OrderedDict([
        ('volume_driver', 'cinder.volume.drivers.rbd.RBDDriver'),
        ('volume_backend_name', name),
        ('rbd_pool', pool),
        ('rbd_ceph_conf', ceph.conf),
        ('rbd_user', ceph.user),
        # nova attaches with this libvirt secret (connection info).
        ('rbd_secret_uuid', ceph.secret_uuid),
        # Only cinder writes this pool: its usage from the pool's stats,
        # not by listing every image's size at each report.
        ('rbd_exclusive_cinder_pool', True),
        ('rbd_flatten_volume_from_snapshot', False),
        ('report_discard_supported', True),
        # Volumes created from the lab image: no cache volume beside them.
        ('image_volume_cache_enabled', False),
        ('rados_connect_timeout', 10),
    ])


def link_ceph_modules(venv, dist=DEBIAN_DIST):
    """Symlink Debian's rados and rbd extension modules into the venv's
    site-packages (they are not on PyPI; a venv of the same Python
    version loads them).  Returns the links' paths."""
    import glob
    sites = glob.glob(os.path.join(venv, 'lib', 'python3*',
                                   'site-packages'))
    if len(sites) != 1:
        raise base.CloudError('no single site-packages in the venv %s'
                              % venv)
    version = os.path.basename(os.path.dirname(sites[0]))[len('python'):]
    suffix = '.cpython-%s-x86_64-linux-gnu.so' % version.replace('.', '')
    links = []
    for name in CEPH_MODULES:
        src = os.path.join(dist, name + suffix)
        if not os.path.exists(src):
            raise base.CloudError(
                '%s is missing: cinder and nova need Ceph\'s Python module '
                '%s for Python %s (apt-get install python3-rados '
                'python3-rbd)' % (src, name, version))
        dst = os.path.join(sites[0], os.path.basename(src))
        if os.path.islink(dst) and os.readlink(dst) == src:
            links.append(dst)
            continue
        if os.path.lexists(dst):
            os.unlink(dst)
        os.symlink(src, dst)
        links.append(dst)
    return links


def init(cloud, s):
    """cinder's schema (and its default volume type)."""
    cloud.run([cloud.bin('cinder-manage'), '--config-file', conf_path(s),
               'db', 'sync'], 'cinder-manage db sync')


def start(cloud, s, node, restart=False):
    """cinder-scheduler on the host, cinder-volume in `node` (a lab node:
    it reads /etc/ceph there)."""
    for sub in ('lock', 'coordination'):
        os.makedirs(s.path('cinder', sub), exist_ok=True)
    argv = [cloud.bin('cinder-scheduler'), '--config-file', conf_path(s)]
    if restart:
        cloud.sup.stop(SCHEDULER)
    cloud.sup.start(SCHEDULER, argv)
    if restart:
        cloud.sup.stop(VOLUME)
    cloud.sup.start(VOLUME, node.argv([cloud.bin('cinder-volume'),
                                       '--config-file', conf_path(s)]))


def wait(cloud, s, timeout=120):
    """Until the scheduler and the RBD backend report up in cinder."""
    listing = cloud.bootstrap('volumes', {
        'services': [[SCHEDULER, cfg.CONTROL_HOST]] + [
            [VOLUME, backend_host(name)] for name, _ in backends(s)],
        'timeout': timeout}, timeout=timeout + 60)
    for name in listing.get('missing', []):
        if not cloud.sup.pid(name):
            raise cloud.sup.failure(name, 'exited')
        raise cloud.sup.failure(name, 'is not up in cinder after %ds'
                                % timeout)
    return listing


# RBD images the cloud makes: nova's instance disks (<uuid>_disk,
# _disk.local, _disk.swap, _disk.config) and cinder's volumes, snapshots'
# clones and backups of them (volume-<uuid>, ...).
CLOUD_IMAGE = re.compile(r'^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-'
                         r'[0-9a-f]{12}_disk(\.[a-z]+)?|volume-[0-9a-f-]{36}'
                         r'(\..*)?)$')


def cloud_images(names):
    """Those of the RBD image `names` that the cloud made (the lab's own
    disks, named after their case folder, are not among them)."""
    return [n for n in names if CLOUD_IMAGE.match(n)]


def cleanup(lab, ceph):
    """With the lab kept: remove the RBD images of the cloud's servers and
    volumes (in the pools of `ceph`, a cfg.CephClient), whose records went
    with the databases.  Returns what would not go."""
    from migration_tempest_plugin.lab.storage import rbd as rbdlib
    left = []
    for pool in (ceph.vms_pool, ceph.volumes_pool, ceph.volumes2_pool):
        names = rbdlib.rbd(lab, 'ls', pool, json=True, check=False) or ()
        for name in cloud_images(names):
            spec = '%s/%s' % (pool, name)
            rbdlib.rbd(lab, 'snap', 'purge', '--no-progress', spec,
                       check=False)
            if rbdlib.rbd(lab, 'rm', '--no-progress', spec,
                          check=False).returncode:
                left.append(spec)
    return left


def stop_volume(cloud):
    return cloud.stop_services([VOLUME])


def stop(cloud):
    return cloud.stop_services(list(SERVICES))
