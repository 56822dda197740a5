"""``rbd``: guest disks in Ceph RBD, as most production clouds keep them.

A one-node Ceph cluster (one mon, one mgr, one bluestore OSD on a sparse
file: no block device, no LVM, no containers) runs in the storage sandbox
(network namespace ``lab-gl``, 10.254.0.253), each daemon in the
foreground under the lab's supervisor, with all its state, logs and
sockets under ``<state>/storage/ceph``.  Guest disks are libvirt network
disks (``protocol='rbd'``) that QEMU opens through librbd, authenticated
with a cephx secret that each node's libvirtd holds.  libvirt counts a
network disk as shared storage.

The API for the lab cloud (it brings Ceph up on any instance storage mode
by making its lab with ``modes=(storage, 'rbd')``; this mode's ``up``
starts the cluster, writes the client files and defines the secret):

* pools: ``VMS_POOL`` ('vms', nova's images_rbd_pool), ``VOLUMES_POOL``
  ('volumes', cinder's rbd_pool), ``IMAGES_POOL`` ('images', glance);
  ``POOLS`` all three (8 PGs, one replica);
* users: ``ADMIN`` ('admin') and ``CINDER`` ('cinder'; mon 'profile rbd',
  osd rbd on volumes and vms, rbd-read-only on images, as devstack's
  plugin gives); ``CLIENTS`` both; names without 'client.';
* ``SECRET_UUID``: the libvirt secret (usage type ceph) that holds
  client.cinder's key in every node: nova's and cinder's rbd_secret_uuid,
  with rbd_user = CINDER;
* in the nodes (each node's mount namespace binds the client folder at
  /etc/ceph): ``NODE_CONF_DIR``, ``NODE_CONF`` (ceph.conf: mon_host, fsid,
  cephx, and [client] keyring), ``node_keyring(client)``
  (/etc/ceph/ceph.client.NAME.keyring), so that ``ceph``, ``rbd`` and the
  rados/rbd Python modules work there with ``--id cinder`` or the admin
  default;
* on the host: ``host_conf(lab)`` (the daemons' ceph.conf, whose [client]
  section names the host-side keyrings), ``host_keyring(lab, client)``,
  ``client_dir(lab)`` (the folder the nodes see as /etc/ceph);
* ``MON_ADDRESS``, ``MON_PORT`` (v1, 6789) and ``MON_PORT_V2`` (3300);
  ``mon_host()`` as ceph.conf writes it;
* ``ceph(lab, *args)`` and ``rbd(lab, *args)``: run the ``ceph`` or
  ``rbd`` command as client.admin inside the storage sandbox (it sees the
  host's files, so ``rbd import`` of a host file works) and return the
  CompletedProcess; ``json=True`` parses ``--format json`` output;
* ``cluster_up(lab, say)`` and ``cluster_down(lab, problems)``: only the
  cluster (the mode's ``up`` and ``down`` call them); ``cluster_status``.

Disk names: the disk a lab instance has at ``<uuid>/disk`` is the raw
image ``vms/<uuid>_disk`` (nova's own naming; ``<uuid>/disk.local`` is
``vms/<uuid>_disk.local``), a clone of its base's snapshot: nova's image
cache ``_base/<name>`` is ``vms/_base_<name>@base``, which the mode
imports from a file it writes under the state folder, as nova imports an
image that glance does not keep in RBD.

Each node's /srv/lab/rbd is a folder of its own (as nova's instances path
is local with images_type = rbd): it holds only what nova keeps beside an
RBD disk (console logs, disk.info), never a disk.
"""

import base64
import json as jsonlib
import os
import time
import uuid as uuidlib
from xml.sax import saxutils

from migration_tempest_plugin import flags
from migration_tempest_plugin.lab.storage import base
from migration_tempest_plugin import runtime as rt

Outcome = flags.Outcome
StorageError = base.StorageError

MON_ADDRESS = base.SERVER_ADDRESS
MON_PORT = 6789
MON_PORT_V2 = 3300
MON_ID = 'a'
MGR_ID = 'x'

VMS_POOL = 'vms'
VOLUMES_POOL = 'volumes'
# cinder's second back end: between two pools RBD's own volume migration
# refuses an attached volume, so cinder moves it through nova's swap.
VOLUMES2_POOL = 'volumes2'
IMAGES_POOL = 'images'
POOLS = (VMS_POOL, VOLUMES_POOL, VOLUMES2_POOL, IMAGES_POOL)
PG_NUM = 8

ADMIN = 'admin'
CINDER = 'cinder'
CLIENTS = (ADMIN, CINDER)
CLIENT_CAPS = {
    CINDER: ('mon', 'profile rbd',
             'osd', 'profile rbd pool=%s, profile rbd pool=%s, '
                    'profile rbd pool=%s, profile rbd-read-only pool=%s' % (
                        VOLUMES_POOL, VOLUMES2_POOL, VMS_POOL, IMAGES_POOL)),
}
# The user the lab's own disks use (the secret holds its key).
DISK_USER = CINDER
SECRET_UUID = 'b5d7f6a2-6c4e-4f0e-9a59-6d3c1e2a7f41'
SECRET_USAGE = 'client.%s secret' % CINDER

NODE_CONF_DIR = '/etc/ceph'
NODE_CONF = NODE_CONF_DIR + '/ceph.conf'

# bluestore makes $osd_data/block this big, sparse.
OSD_BLOCK_GIB = 16
# The lowest value the OSD accepts (default 4 GiB).
OSD_MEMORY_TARGET = 939524096

# The snapshot of a base that disks are cloned from (nova's 'snap').
BASE_SNAP = 'base'

PRECREATE_INC_MESSAGE = ('pre-creation of storage targets for incremental '
                         'storage migration is not supported')

MON_KEY, MGR_KEY, OSD_KEY = 'ceph-mon', 'ceph-mgr', 'ceph-osd'
DAEMON_KEYS = (MON_KEY, MGR_KEY, OSD_KEY)


# -- names and paths -------------------------------------------------------

def mon_host(address=MON_ADDRESS):
    return '[v2:%s:%d,v1:%s:%d]' % (address, MON_PORT_V2, address, MON_PORT)


def node_keyring(client):
    """The keyring of `client` ('admin', 'cinder') inside a node."""
    return '%s/ceph.client.%s.keyring' % (NODE_CONF_DIR, client)


def ceph_dir(lab):
    return base.state_dir(lab, 'ceph')


def host_conf(lab):
    """The cluster's ceph.conf on the host (daemons and host clients)."""
    return os.path.join(ceph_dir(lab), 'ceph.conf')


def client_dir(lab):
    """The folder every node sees as /etc/ceph."""
    return os.path.join(ceph_dir(lab), 'etc')


def host_keyring(lab, client):
    return os.path.join(client_dir(lab), 'ceph.client.%s.keyring' % client)


def image_spec(relpath):
    """(pool, image) of the file a lab instance has at `relpath` (relative
    to the mode's path): `<uuid>/disk` -> (vms, <uuid>_disk), `_base/X` ->
    (vms, _base_X)."""
    rel = base.relative_path(RBD.name, relpath)
    if not rel:
        raise base.StorageError('no RBD image for the top of %s'
                                % base.storage_path(RBD.name))
    return VMS_POOL, rel.replace('/', '_')


def qemu_url(pool, image, user=DISK_USER, conf=NODE_CONF):
    """QEMU's legacy rbd: name of an image (as qemu-img and a qcow2 backing
    file name take it); ':' and '@' cannot be escaped there."""
    for part in (pool, image):
        if any(c in part for c in ':@/'):
            raise base.StorageError('bad RBD name %r' % part)
    return 'rbd:%s/%s:id=%s:conf=%s' % (pool, image, user, conf)


# -- pure renderers -----------------------------------------------------------

def render_ceph_conf(fsid, folder, address=MON_ADDRESS, for_node=False):
    """ceph.conf of the cluster.  The daemons' file (for_node False) puts
    log_file, admin_socket, data and keyring in each daemon's section: in
    [global] every client, QEMU included, would write to the daemons' log
    and socket, and a [global] keyring would override the daemons' own.
    A node's file has only what a client needs, and [client] names the
    keyrings at /etc/ceph."""
    lines = [
        '# Written by migration_tempest_plugin.lab.storage.rbd.',
        '[global]',
        'fsid = %s' % fsid,
        'mon_host = %s' % mon_host(address),
        'auth_cluster_required = cephx',
        'auth_service_required = cephx',
        'auth_client_required = cephx',
    ]
    keyrings = NODE_CONF_DIR if for_node else os.path.join(folder, 'etc')
    client = ['[client]', 'keyring = %s/ceph.$name.keyring' % keyrings]
    if for_node:
        return '\n'.join(lines + client) + '\n'
    lines += [
        'auth_allow_insecure_global_id_reclaim = false',
        'osd_pool_default_size = 1',
        'osd_pool_default_min_size = 1',
        'osd_pool_default_pg_num = %d' % PG_NUM,
        'osd_pool_default_pgp_num = %d' % PG_NUM,
        'osd_pool_default_pg_autoscale_mode = off',
        'osd_crush_chooseleaf_type = 0',
        'mon_allow_pool_size_one = true',
        'mon_warn_on_pool_no_redundancy = false',
        'mon_allow_pool_delete = true',
        'run_dir = %s/run' % folder,
        'crash_dir = %s/crash' % folder,
    ]
    for kind in ('mon', 'mgr', 'osd'):
        lines += [
            '[%s]' % kind,
            'public_addr = %s' % address,
            '%s_data = %s/%s/ceph-$id' % (kind, folder, kind),
            'keyring = %s/%s/ceph-$id/keyring' % (folder, kind),
            'log_file = %s/log/$name.log' % folder,
            'admin_socket = %s/run/$name.asok' % folder,
        ]
        if kind == 'mon':
            # The lab's state folder shares the host's root file system,
            # often fuller than the 70 % a mon warns at.
            lines.append('mon_data_avail_warn = 5')
            # One mon has no one to batch its proposals with: the default
            # 1 s wait made pools and PGs take 10 s longer to come up.
            lines.append('paxos_propose_interval = 0.1')
        if kind == 'osd':
            lines += [
                'osd_objectstore = bluestore',
                'bluestore_block_size = %d' % (OSD_BLOCK_GIB << 30),
                'osd_memory_target = %d' % OSD_MEMORY_TARGET,
            ]
    return '\n'.join(lines + client) + '\n'


def render_keyring(client, key, caps=()):
    """A keyring of one entity; caps: (service, spec, service, spec...)."""
    lines = ['[%s]' % client, '\tkey = %s' % key]
    for service, spec in zip(caps[::2], caps[1::2]):
        lines.append('\tcaps %s = "%s"' % (service, spec))
    return '\n'.join(lines) + '\n'


def render_secret_xml(uuid=SECRET_UUID, usage=SECRET_USAGE):
    q = saxutils.escape
    return ("<secret ephemeral='no' private='no'>\n"
            "  <uuid>%s</uuid>\n"
            "  <usage type='ceph'><name>%s</name></usage>\n"
            "</secret>\n" % (q(uuid), q(usage)))


def render_disk_source(pool, image, user=DISK_USER, uuid=SECRET_UUID,
                       address=MON_ADDRESS, port=MON_PORT):
    """The <source> of a libvirt network disk on RBD, with its <auth>."""
    q = saxutils.quoteattr
    return ("<source protocol='rbd' name=%s><host name=%s port=%s/>"
            "<auth username=%s><secret type='ceph' uuid=%s/></auth>"
            "</source>" % (q('%s/%s' % (pool, image)), q(address),
                           q(str(port)), q(user), q(uuid)))


def parse_key(keyring_text):
    """The key of the first entity in a keyring's text."""
    for line in keyring_text.splitlines():
        name, sep, value = line.strip().partition('=')
        if sep and name.strip() == 'key':
            key = value.strip()
            base64.b64decode(key, validate=True)
            return key
    raise base.StorageError('no key in keyring')


# -- commands ----------------------------------------------------------------

def _run(lab, argv, check=True, timeout=120, input=None):
    return lab.gluster.run(argv, check=check, timeout=timeout, input=input)


def ceph(lab, *args, check=True, timeout=120, input=None, json=False):
    """`ceph ARGS` as client.admin in the storage sandbox; with json, the
    parsed --format json output."""
    argv = ['ceph', '-c', host_conf(lab), '--connect-timeout', '20']
    argv += [str(a) for a in args] + (['--format', 'json'] if json else [])
    res = _run(lab, argv, check=check, timeout=timeout, input=input)
    return jsonlib.loads(res.stdout or 'null') if json else res


def rbd(lab, *args, check=True, timeout=300, json=False):
    """`rbd ARGS` as client.admin in the storage sandbox."""
    argv = ['rbd', '-c', host_conf(lab)] + [str(a) for a in args]
    argv += ['--format', 'json'] if json else []
    res = _run(lab, argv, check=check, timeout=timeout)
    return jsonlib.loads(res.stdout or 'null') if json else res


def _tool(lab, *argv):
    return _run(lab, [str(a) for a in argv]).stdout.strip()


def _fsid(lab):
    meta = rt.read_json(os.path.join(ceph_dir(lab), 'cluster.json'))
    if not meta.get('fsid'):
        meta['fsid'] = str(uuidlib.uuid4())
        rt.update_json(os.path.join(ceph_dir(lab), 'cluster.json'),
                       fsid=meta['fsid'])
    return meta['fsid']


def _data(lab, kind, ident):
    return os.path.join(ceph_dir(lab), kind, 'ceph-%s' % ident)


def _spawn(lab, key, daemon, ident):
    lab.gluster.spawn(key, [daemon, '-f', '-c', host_conf(lab), '-i',
                            ident], os.path.join(lab.log_dir, key + '.out'))


def _alive(lab, key):
    def check():
        if not lab.procs.pid(key):
            log = os.path.join(ceph_dir(lab), 'log', key.replace(
                'ceph-', '') + '.log')
            raise rt.LabError('%s exited: %s' % (key, rt.one_line(
                rt.tail(os.path.join(lab.log_dir, key + '.out'), 6)
                + ' ' + rt.tail(log, 6), 600)))
    return check


def _answers(lab):
    return ceph(lab, 'mon', 'stat', check=False,
                timeout=30).returncode == 0


# -- the cluster --------------------------------------------------------------

def _write_conf(lab):
    folder = ceph_dir(lab)
    for sub in ('etc', 'run', 'log', 'crash', 'mon', 'mgr', 'osd'):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    fsid = _fsid(lab)
    rt.write_file(host_conf(lab), render_ceph_conf(fsid, folder))
    rt.write_file(os.path.join(client_dir(lab), 'ceph.conf'),
                  render_ceph_conf(fsid, folder, for_node=True))
    return fsid


def _mon_up(lab, say, fsid):
    data = _data(lab, 'mon', MON_ID)
    done = os.path.join(data, 'mkfs_done')
    if not os.path.exists(done):
        say('ceph: mon %s mkfs' % MON_ID)
        # A new mon is a new cluster: what the old one knew goes too (the
        # client folder stays: the nodes bind it).
        for sub in ('mgr', 'osd'):
            rt.host_run(['rm', '-rf', os.path.join(ceph_dir(lab), sub)])
            os.makedirs(os.path.join(ceph_dir(lab), sub))
        for client in CLIENTS:
            if os.path.exists(host_keyring(lab, client)):
                os.unlink(host_keyring(lab, client))
        rt.update_json(os.path.join(ceph_dir(lab), 'cluster.json'),
                       osd_id=None)
        tmp = os.path.join(ceph_dir(lab), 'mkfs')
        os.makedirs(tmp, exist_ok=True)
        mon_keyring = os.path.join(tmp, 'mon.keyring')
        admin = host_keyring(lab, ADMIN)
        rt.write_file(mon_keyring, render_keyring(
            'mon.', _tool(lab, 'ceph-authtool', '--gen-print-key'),
            ('mon', 'allow *')), 0o600)
        rt.write_file(admin, render_keyring(
            'client.admin', _tool(lab, 'ceph-authtool', '--gen-print-key'),
            ('mon', 'allow *', 'osd', 'allow *', 'mgr', 'allow *',
             'mds', 'allow *')), 0o600)
        _tool(lab, 'ceph-authtool', mon_keyring, '--import-keyring', admin)
        monmap = os.path.join(tmp, 'monmap')
        _tool(lab, 'monmaptool', '--create', '--clobber', '--fsid', fsid,
              '--addv', MON_ID, mon_host(), monmap)
        rt.host_run(['rm', '-rf', data])
        _tool(lab, 'ceph-mon', '-c', host_conf(lab), '--mkfs', '-i', MON_ID,
              '--monmap', monmap, '--keyring', mon_keyring)
        rt.write_file(done, '')
    if not lab.procs.pid(MON_KEY):
        say('ceph: mon %s at %s' % (MON_ID, mon_host()))
        _spawn(lab, MON_KEY, 'ceph-mon', MON_ID)
    rt.wait_for('the ceph mon to answer', lambda: _answers(lab), 90,
                _alive(lab, MON_KEY), interval=0.5)


def _mgr_up(lab, say):
    keyring = os.path.join(_data(lab, 'mgr', MGR_ID), 'keyring')
    if not os.path.exists(keyring):
        os.makedirs(os.path.dirname(keyring), exist_ok=True)
        ceph(lab, 'auth', 'get-or-create', 'mgr.' + MGR_ID, 'mon',
             'allow profile mgr', 'osd', 'allow *', 'mds', 'allow *',
             '-o', keyring)
    if not lab.procs.pid(MGR_KEY):
        say('ceph: mgr %s' % MGR_ID)
        _spawn(lab, MGR_KEY, 'ceph-mgr', MGR_ID)


def _osd_up(lab, say):
    meta_file = os.path.join(ceph_dir(lab), 'cluster.json')
    osd_id = rt.read_json(meta_file).get('osd_id')
    if osd_id is None or not os.path.exists(os.path.join(
            _data(lab, 'osd', osd_id), 'mkfs_done')):
        started = time.monotonic()
        osd_uuid = str(uuidlib.uuid4())
        key = _tool(lab, 'ceph-authtool', '--gen-print-key')
        osd_id = int(ceph(lab, 'osd', 'new', osd_uuid, '-i', '-',
                          input=jsonlib.dumps({'cephx_secret': key})
                          ).stdout.strip())
        data = _data(lab, 'osd', osd_id)
        rt.host_run(['rm', '-rf', data])
        os.makedirs(data)
        rt.write_file(os.path.join(data, 'keyring'), render_keyring(
            'osd.%d' % osd_id, key), 0o600)
        _run(lab, ['ceph-osd', '-c', host_conf(lab), '-i', str(osd_id),
                   '--mkfs', '--key', key, '--osd-uuid', osd_uuid],
             timeout=300)
        rt.write_file(os.path.join(data, 'mkfs_done'), '')
        rt.update_json(meta_file, osd_id=osd_id)
        say('ceph: osd.%d mkfs (bluestore on a %d GiB sparse file) in '
            '%.1fs' % (osd_id, OSD_BLOCK_GIB, time.monotonic() - started))
    if not lab.procs.pid(OSD_KEY):
        say('ceph: osd.%d' % osd_id)
        _spawn(lab, OSD_KEY, 'ceph-osd', str(osd_id))

    def osd_up():
        stat = ceph(lab, 'osd', 'stat', json=True, check=False)
        return bool(stat) and stat.get('num_up_osds') == 1 and \
            stat.get('num_in_osds') == 1
    rt.wait_for('osd.%d to come up' % osd_id, osd_up, 120,
                _alive(lab, OSD_KEY), interval=0.5)


def _pools_up(lab, say):
    have = set(ceph(lab, 'osd', 'pool', 'ls', json=True) or ())
    for pool in POOLS:
        if pool in have:
            continue
        say('ceph: pool %s (%d PGs, size 1)' % (pool, PG_NUM))
        ceph(lab, 'osd', 'pool', 'create', pool, PG_NUM, PG_NUM)

    # `rbd pool init` writes to the pool, so it waits until its PGs are
    # active (the mgr's PG statistics would tell it seconds later).
    for pool in POOLS:
        if pool not in have:
            rbd(lab, 'pool', 'init', pool)


def _clients_up(lab):
    for client, caps in CLIENT_CAPS.items():
        path = host_keyring(lab, client)
        if os.path.exists(path):
            # A cluster an older lab made: its caps as this one needs them.
            ceph(lab, 'auth', 'caps', 'client.' + client, *caps)
            continue
        ceph(lab, 'auth', 'get-or-create', 'client.' + client, *caps,
             '-o', path)
        os.chmod(path, 0o600)


def cluster_up(lab, say):
    """Start (or repair) the cluster: mon, mgr, OSD, pools and users.
    Returns the seconds it took."""
    started = time.monotonic()
    fsid = _write_conf(lab)
    _mon_up(lab, say, fsid)
    _mgr_up(lab, say)
    _osd_up(lab, say)
    _pools_up(lab, say)
    _clients_up(lab)
    # The mgr must report, or `ceph df` answers the mon's stale zeros
    # (nova's disk inventory with images_type = rbd).
    rt.wait_for('the ceph mgr to report', lambda: (ceph(
        lab, 'mgr', 'stat', json=True, check=False) or {}).get('available'),
        90, _alive(lab, MGR_KEY), interval=0.5)
    seconds = time.monotonic() - started
    say('ceph: up in %.1fs (fsid %s)' % (seconds, fsid))
    return seconds


def cluster_down(lab, problems):
    """Stop the OSD, the mgr, then the mon (each by its recorded PID)."""
    for key in (OSD_KEY, MGR_KEY, MON_KEY):
        if lab.procs.record(key) and not lab.procs.stop(key, timeout=30):
            problems.append('%s still alive' % key)


def cluster_status(lab):
    pids = {key: lab.procs.pid(key) for key in DAEMON_KEYS}
    out = {'address': MON_ADDRESS, 'pids': pids, 'health': None,
           'rss_mib': {key: rt.rss_bytes([pid]) >> 20
                       for key, pid in pids.items() if pid}}
    if all(pids.values()) and lab.gluster.ready():
        res = ceph(lab, 'health', check=False, timeout=30)
        out['health'] = res.stdout.strip() if not res.returncode else None
    return out


# -- the mode -----------------------------------------------------------------

class RBD(base.StorageMode):
    name = 'rbd'
    packages = {'ceph-mon': 'ceph-mon', 'ceph-mgr': 'ceph-mgr',
                'ceph-osd': 'ceph-osd', 'ceph': 'ceph-common',
                'rbd': 'ceph-common', 'ceph-authtool': 'ceph-common',
                'monmaptool': 'ceph-common',
                '/usr/lib/python3/dist-packages/rados.cpython-311-x86_64'
                '-linux-gnu.so': 'python3-rados',
                '/usr/lib/python3/dist-packages/rbd.cpython-311-x86_64'
                '-linux-gnu.so': 'python3-rbd',
                '/usr/lib/x86_64-linux-gnu/qemu/block-rbd.so':
                'qemu-block-extra'}
    served = True
    status_key = 'ceph'
    disk_format = 'raw'

    def folder(self, lab, node):
        return base.state_dir(lab, 'rbd', node.name)

    def host_base(self, lab, node):
        # Only nova's companions of a disk; the disks are in RBD.
        return self.folder(lab, node)

    def qemu_name(self, relpath):
        return qemu_url(*image_spec(relpath))

    def read_name(self, relpath):
        return qemu_url(*image_spec(relpath))

    def disk_source(self, path):
        return 'network', render_disk_source(*image_spec(path))

    def write_image(self, lab, node, relpath, write):
        """Write the image to a file under the state folder, import it
        into RBD and snapshot it for clones (once: image names are unique
        per content), as nova does with an image glance has not in RBD."""
        pool, image = image_spec(relpath)
        spec = '%s/%s' % (pool, image)
        if image in (rbd(lab, 'ls', pool, json=True) or ()):
            snaps = rbd(lab, 'snap', 'ls', spec, json=True) or ()
            if any(s.get('name') == BASE_SNAP for s in snaps):
                return
            rbd(lab, 'rm', '--no-progress', spec)   # a half-made base
        stage = os.path.join(ceph_dir(lab), 'stage', pool, image)
        os.makedirs(os.path.dirname(stage), exist_ok=True)
        write(stage)
        rbd(lab, 'import', '--no-progress', stage, spec)
        os.unlink(stage)
        rbd(lab, 'snap', 'create', '%s@%s' % (spec, BASE_SNAP))
        rbd(lab, 'snap', 'protect', '%s@%s' % (spec, BASE_SNAP))

    def create_disk(self, lab, node, relpath, size_bytes, base=None,
                    options=()):
        """A raw RBD image: a clone of the base's snapshot (nova's
        layout with images_type = rbd), or an empty one.  A qcow2 image
        on RBD grows, and a destination QEMU that opened it before the
        source grew it fails its writes past the size it saw (EINVAL,
        seen in the lab), which nova's raw images never do."""
        spec = '%s/%s' % image_spec(relpath)
        if base is None:
            if size_bytes % (1 << 20):
                raise StorageError('an RBD disk of %d bytes is not '
                                   'whole MiB' % size_bytes)
            rbd(lab, 'create', '--size', size_bytes >> 20, spec)
            return
        base_mode, base_rel = base
        if base_mode.name != self.name:
            raise StorageError('an rbd disk clones a base on rbd, not '
                               'on %s' % base_mode.name)
        parent = '%s/%s' % image_spec(base_rel)
        info = rbd(lab, 'info', parent, json=True)
        if info['size'] != size_bytes:
            raise StorageError('the base %s has %d bytes, the disk %d' % (
                parent, info['size'], size_bytes))
        rbd(lab, 'clone', '%s@%s' % (parent, BASE_SNAP), spec)

    def remove(self, lab, node, relpath):
        """Remove the images of the file or folder at `relpath`."""
        rel = base.relative_path(self.name, relpath)
        pool, image = image_spec(rel)
        images = rbd(lab, 'ls', pool, json=True, check=False) or ()
        for name in images:
            if name == image or name.startswith(image + '_'):
                rbd(lab, 'rm', '--no-progress', '%s/%s' % (pool, name),
                    check=False)
        node.run(['rm', '-rf', os.path.join(self.path, rel)], check=False)

    # -- mounts and daemons -------------------------------------------------

    def node_binds(self, lab, node):
        for folder in (self.folder(lab, node), client_dir(lab)):
            os.makedirs(folder, exist_ok=True)
        return [(self.folder(lab, node), self.path),
                (client_dir(lab), NODE_CONF_DIR)]

    def host_dirs(self):
        return (NODE_CONF_DIR,)

    def up(self, lab, say):
        for node in lab.nodes:
            os.makedirs(self.folder(lab, node), exist_ok=True)
        cluster_up(lab, say)
        key_file = os.path.join(ceph_dir(lab), 'secret.b64')
        rt.write_file(key_file, parse_key(open(host_keyring(
            lab, DISK_USER)).read()), 0o600)
        xml_file = os.path.join(ceph_dir(lab), 'secret.xml')
        rt.write_file(xml_file, render_secret_xml())
        for node in lab.nodes:
            node.wait_libvirtd()
            node.run(['virsh', '-c', node.uri, 'secret-define', xml_file])
            node.run(['virsh', '-c', node.uri, 'secret-set-value',
                      '--secret', SECRET_UUID, '--file', key_file])
        say('ceph: libvirt secret %s (client.%s) on %s' % (
            SECRET_UUID, DISK_USER, ', '.join(n.name for n in lab.nodes)))

    def down(self, lab, say, problems):
        cluster_down(lab, problems)

    def daemon_keys(self, lab):
        return list(DAEMON_KEYS)

    def node_status(self, lab, node, mounts):
        conf = node.mount_type(NODE_CONF_DIR, mounts)
        return 'rbd (librbd)' if conf and lab.procs.pid(OSD_KEY) else None

    def status(self, lab):
        return cluster_status(lab)

    def status_ok(self, status):
        return bool(status['health']) and status['health'].startswith(
            'HEALTH_OK')

    # -- rules --------------------------------------------------------------

    def expect(self, value):
        if flags.has(value, 'NON_SHARED_INC'):
            # qemuMigrationDstPrecreateStorage(): a copied disk whose
            # source "path" does not exist on the destination must be
            # pre-created, which INC refuses; for a network disk the path
            # is the image's name ('vms/<uuid>_disk'), which is no file.
            return base.expectation(
                Outcome.REFUSED_BY_LIBVIRT, 'INC copies need a pre-created '
                "target, and an RBD disk's name is no file on the "
                'destination', PRECREATE_INC_MESSAGE)
        if flags.has(value, 'NON_SHARED_DISK'):
            # qemuMigrationDstPrecreateDisk() skips a network disk; the
            # destination's NBD server exports the same RBD image and the
            # mirror writes onto the disk it reads (as on NFS).
            return base.expectation(
                Outcome.DATA_AT_RISK, 'the RBD image is mirrored onto '
                'itself; librbd hands its exclusive lock to each writer in '
                'turn, so nothing stops it')
        # qemuMigrationSrcIsSafe(): "network disks are safe".
        return base.expectation(
            Outcome.INTACT, 'a network disk is shared storage to libvirt; '
            'nothing is copied')


MODE = RBD
