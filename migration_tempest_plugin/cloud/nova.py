"""nova for the lab cloud: the control services (api under gunicorn,
conductor, scheduler) on the lab's address, and one nova-compute inside
each lab node, with their configuration and database schemas."""

import collections
import logging
import os
import shutil
import time

from tempest.lib.common.utils import test_utils

from migration_tempest_plugin.cloud import base
from migration_tempest_plugin.cloud import config as cfg
from migration_tempest_plugin import runtime as rt

LOG = logging.getLogger(__name__)

CONTROL = ('nova-conductor', 'nova-scheduler')
COMPUTE_PREFIX = 'nova-compute-'
# (config folder, file under the venv's etc/) copied as they are.
COPIED = (('nova', 'nova/api-paste.ini'), ('nova', 'nova/rootwrap.conf'))


def configure(s):
    """(config folder, file name, text) of every nova.conf.  A compute's
    nova.conf is rendered once per `up`; the tests may change it between
    (restart-compute keeps their change)."""
    out = [('nova', 'nova.conf', nova_conf(s))]
    for compute in s.computes:
        out.append((COMPUTE_PREFIX + compute.name, 'nova.conf',
                    nova_compute_conf(s, compute)))
    return out


def init(cloud, s):
    """nova's API and cell databases, and the cells."""
    nm = [cloud.bin('nova-manage'), '--config-file',
          os.path.join(s.etc('nova'), 'nova.conf')]
    cloud.run(nm + ['api_db', 'sync'], 'nova-manage api_db sync')
    cloud.run(nm + ['cell_v2', 'map_cell0', '--database_connection',
                    cfg.db_url(s, 'nova_cell0')],
              'nova-manage cell_v2 map_cell0')
    cells = cloud.run(nm + ['cell_v2', 'list_cells'],
                      'nova-manage cell_v2 list_cells')
    if ' cell1 ' not in cells:
        cloud.run(nm + ['cell_v2', 'create_cell', '--name', 'cell1',
                        '--verbose'], 'nova-manage cell_v2 create_cell')
    cloud.run(nm + ['db', 'sync'], 'nova-manage db sync')


def _privsep_sections(s):
    helper = os.path.join(s.venv, 'bin', 'privsep-helper')
    return collections.OrderedDict(
        (section, {'helper_command': helper})
        for section in ('nova_sys_admin', 'privsep_osbrick',
                        'vif_plug_linux_bridge_privileged',
                        'vif_plug_ovs_privileged'))


def _nova_common(s, state_path):
    sections = collections.OrderedDict()
    default = cfg.common(s, state_path)
    default['my_ip'] = s.host
    # SIGTERM: finish within seconds (the default waits up to 60), and wait
    # for no task of the manager: the tests restart computes only between
    # operations (nova warns when this exceeds the timeout above).
    default['graceful_shutdown_timeout'] = 5
    default['manager_shutdown_timeout'] = 0
    default['rootwrap_config'] = os.path.join(s.etc('nova'),
                                              'rootwrap.conf')
    sections['DEFAULT'] = default
    sections['api'] = {'auth_strategy': 'keystone'}
    sections['keystone_authtoken'] = cfg.authtoken(s, 'nova')
    sections['service_user'] = collections.OrderedDict(
        [('send_service_user_token', True)] +
        list(cfg.service_auth(s, 'nova').items()))
    sections['placement'] = cfg.service_auth(s, 'placement')
    sections['neutron'] = cfg.service_auth(s, 'neutron')
    sections['glance'] = {'region_name': cfg.REGION}
    sections['cinder'] = cinder_section(s)
    sections['oslo_concurrency'] = {'lock_path': s.lock_path}
    sections['oslo_messaging_notifications'] = {'driver': 'noop'}
    sections['vnc'] = {'enabled': False}
    sections['spice'] = {'enabled': False}
    sections['serial_console'] = {'enabled': False}
    return sections


def cinder_section(s):
    """nova's [cinder]: the catalog's block-storage endpoint (nova asks for
    volumev3, its alias), and the nova service user for what nova asks of
    cinder on its own (attachments of a migration, cleanup)."""
    opts = collections.OrderedDict([('os_region_name', cfg.REGION),
                                    ('catalog_info', 'volumev3::publicURL')])
    auth = cfg.service_auth(s, 'nova')
    del auth['region_name']
    opts.update(auth)
    return opts


def rbd_options(s):
    """nova-compute's [libvirt] options of the lab's Ceph.

    On every storage mode: the cephx user and libvirt secret nova falls
    back to when it attaches an RBD volume (cinder's connection info names
    the same).  With storage rbd, the instance disks too: RBD images
    ``<pool>/<instance uuid>_disk`` (``_disk.local``, ``_disk.swap`` for
    the ephemeral and swap disks), which libvirt counts as shared, so a live
    migration copies no disk.  The instances path stays each node's own
    folder (kernel, ramdisk, console log)."""
    ceph = s.ceph
    opts = collections.OrderedDict()
    if s.images_rbd:
        opts['images_type'] = 'rbd'
        opts['images_rbd_pool'] = ceph.vms_pool
        opts['images_rbd_ceph_conf'] = ceph.conf
    opts['rbd_user'] = ceph.user
    opts['rbd_secret_uuid'] = ceph.secret_uuid
    return opts


def nova_conf(s):
    """nova.conf of nova-api, nova-conductor and nova-scheduler (one cell:
    cell1's database in [database], its queue in cfg.transport_url)."""
    sections = _nova_common(s, s.path('nova', 'control'))
    sections['DEFAULT']['host'] = cfg.CONTROL_HOST
    sections['api_database'] = {'connection': cfg.db_url(s, 'nova_api')}
    sections['database'] = {'connection': cfg.db_url(s, 'nova')}
    sections['wsgi'] = {'api_paste_config': os.path.join(s.etc('nova'),
                                                         'api-paste.ini')}
    sections['conductor'] = {'workers': 1}
    sections['scheduler'] = collections.OrderedDict([
        ('workers', 1),
        # `cloud up` runs discover_hosts itself once the computes report.
        ('discover_hosts_in_cells_interval', -1),
    ])
    sections['filter_scheduler'] = collections.OrderedDict([
        ('track_instance_changes', False),
        # devstack's list: nova's defaults plus the two that tempest's
        # affinity tests need (tempest.conf names the same list).
        ('enabled_filters', ','.join(cfg.SCHEDULER_FILTERS)),
    ])
    return cfg.render_ini(sections, cfg.HEADER)


def nova_compute_conf(s, node, migration=None):
    """nova.conf of the nova-compute on one lab node."""
    opts = cfg.migration_options(migration if migration is not None
                                 else s.migration)
    sections = _nova_common(s, s.path('nova', node.name))
    default = sections['DEFAULT']
    default['host'] = node.name
    default['my_ip'] = node.address
    default['compute_driver'] = 'libvirt.LibvirtDriver'
    # The tests restart the computes for each nova configuration, between
    # operations: stopping its RPC server took nova-compute 4.5 s of the 5
    # allowed (amqp channel close), a third of a restart.  Nothing runs then
    # that a cut would harm.
    default['graceful_shutdown_timeout'] = 1
    default['instances_path'] = node.instances_path
    default['heal_instance_info_cache_interval'] = -1
    default['resume_guests_state_on_host_boot'] = False
    default['sync_power_state_interval'] = 60
    libvirt = collections.OrderedDict([
        ('virt_type', 'qemu'),
        ('cpu_mode', 'none'),
        ('live_migration_scheme', 'tcp'),
        ('live_migration_inbound_addr', node.address),
        ('live_migration_completion_timeout', 800),
        ('live_migration_timeout_action', 'abort'),
    ])
    libvirt.update(opts)
    libvirt.update(rbd_options(s))
    sections['libvirt'] = libvirt
    sections['compute'] = {'max_concurrent_live_migrations': 1}
    # The guest kernel is an AKI image: a bzImage, whose legacy boot sector
    # nova's deep image inspection takes for an MBR with a bad partition
    # table.  Spawning does not inspect kernels, but pre_live_migration on
    # the destination does (fetch_to_raw), and refuses the migration with
    # "Image does not pass safety check".  The lab's images are our own.
    sections['workarounds'] = {'disable_deep_image_inspection': True}
    # Each node its own locks, as two hosts would have.
    sections['oslo_concurrency'] = {
        'lock_path': s.path('nova', node.name, 'lock')}
    sections.update(_privsep_sections(s))
    return cfg.render_ini(sections, cfg.HEADER)


def start_control(cloud, s, restart=False):
    conf = os.path.join(s.etc('nova'), 'nova.conf')
    for name in CONTROL:
        if restart:
            cloud.sup.stop(name)
        cloud.sup.start(name, [cloud.bin(name), '--config-file', conf])


def compute_key(compute):
    return COMPUTE_PREFIX + compute.name


def stop_computes(cloud):
    return cloud.stop_services([n for n in cloud.sup.names()
                                if n.startswith(COMPUTE_PREFIX)])


def stop_control(cloud):
    return cloud.stop_services(CONTROL)


def start_compute(cloud, s, compute, node, restart=False):
    key = compute_key(compute)
    if restart:
        cloud.sup.stop(key)
    os.makedirs(s.path('nova', compute.name, 'lock'), exist_ok=True)
    node.run(['mkdir', '-p', compute.instances_path])
    conf = os.path.join(s.nova_compute_dir(compute.name), 'nova.conf')
    return cloud.sup.start(key, node.argv([cloud.bin('nova-compute'),
                                          '--config-file', conf]))


def node_hostnames(cloud):
    """The hostname each node's libvirtd reports (nova's hypervisor
    hostname and placement's resource provider name: they must differ).

    When the nodes share the host's UTS namespace, libvirtd reports
    the host's name on both; a per-node /etc/hosts bound inside the
    node's mount namespace then makes the short hostname resolve
    (canonically) to the node's own name."""
    names = {}
    for compute, node in cloud.compute_nodes():
        names[compute.name] = _virsh_hostname(node)
    if len(set(names.values())) == len(names):
        return names
    for compute, node in cloud.compute_nodes():
        hosts = cloud.path('etc', 'hosts-' + compute.name)
        short = node.run(['uname', '-n']).stdout.strip()
        rt.write_file(hosts, '127.0.0.1 localhost\n::1 localhost '
                      'ip6-localhost ip6-loopback\n%s %s %s\n' % (
                          compute.address, compute.name, short))
        with open(hosts) as f:
            wanted = f.read()
        if node.run(['cat', '/etc/hosts']).stdout != wanted:
            node.run(['mount', '--bind', hosts, '/etc/hosts'])
        names[compute.name] = _virsh_hostname(node)
    if len(set(names.values())) != len(names):
        raise base.CloudError(
            'the lab nodes report the same hostname to nova (%s); each '
            'node needs its own UTS namespace' % ', '.join(
                '%s=%s' % kv for kv in sorted(names.items())))
    return names


def _virsh_hostname(node):
    return node.run(['virsh', '-c', 'qemu:///system', 'hostname'],
                    timeout=60).stdout.strip()


def wait_computes(cloud, s, hostnames, timeout=240):
    """Discover the computes into cell1 and wait until both are up,
    enabled and listed as hypervisors."""
    deadline = time.monotonic() + timeout
    nm = [cloud.bin('nova-manage'), '--config-file',
          os.path.join(s.etc('nova'), 'nova.conf')]
    hosts = [c.name for c in s.computes]
    listing = {}

    def all_up():
        for key in [compute_key(c) for c, _n in cloud.compute_nodes()] + \
                list(CONTROL):
            if not cloud.sup.pid(key):
                raise cloud.sup.failure(key, 'exited')
        cloud.run(nm + ['cell_v2', 'discover_hosts'],
                  'nova-manage cell_v2 discover_hosts')
        listing.clear()     # 'missing' is only there while some are
        listing.update(cloud.bootstrap('computes', {
            'hosts': hosts, 'hypervisors': sorted(hostnames.values()),
            'control': list(CONTROL),
            'timeout': min(20, max(5, int(deadline - time.monotonic())))}))
        return not listing.get('missing')
    if test_utils.call_until_true(all_up, timeout, 0):
        return listing
    key = COMPUTE_PREFIX + listing['missing'][0]
    if key in cloud.sup.names():
        raise cloud.sup.failure(key, 'is not up in nova after %ds' % timeout)
    raise base.CloudError('computes not up in nova after %ds: %s' % (
        timeout, ', '.join(listing['missing'])))


def restart_compute(cloud, name, timeout=180, wait=True):
    """Restart one nova-compute with its nova.conf as it is now (the
    tests edit it); with `wait`, until it reports again.  Without, it
    returns once the old process is gone and the new one started, as
    `systemctl restart` does on devstack (the tests wait themselves)."""
    s = cloud.settings()
    compute, node = cloud.compute_node(name)
    if not wait:
        start_compute(cloud, s, compute, node, restart=True)
        return {}
    since = base.now_utc()
    time.sleep(1)
    start_compute(cloud, s, compute, node, restart=True)
    key = compute_key(compute)
    listing = {}

    def reported():
        listing.clear()
        listing.update(cloud.bootstrap('status', {}))
        if any(svc['binary'] == 'nova-compute' and svc['host'] == name
               and svc['state'] == 'up' and svc['updated_at']
               and svc['updated_at'][:19] > since[:19]
               for svc in listing['services']):
            return True
        if not cloud.sup.pid(key):
            raise cloud.sup.failure(key, 'exited')
        return False
    if not test_utils.call_until_true(reported, timeout, 2):
        raise cloud.sup.failure(key, 'did not report within %ds' % timeout)
    return listing


def cleanup(cloud):
    """With the lab kept: remove nova's guests and instance files."""
    lab = cloud.lab()
    if not lab.status().get('up'):
        return
    for compute, node in cloud.compute_nodes():
        res = node.run(['virsh', '-c', 'qemu:///system', 'list', '--all',
                        '--name'], check=False)
        for dom in res.stdout.split():
            if dom.startswith('instance-'):
                node.run(['virsh', '-c', 'qemu:///system', 'destroy',
                          dom], check=False)
                node.run(['virsh', '-c', 'qemu:///system', 'undefine',
                          '--nvram', dom], check=False)
        shutil.rmtree(node.host_path(cloud.storage, cfg.INSTANCES_DIR),
                      ignore_errors=True)
        try:
            node.run(['umount', '/etc/hosts'], check=False)
            node.run(['umount', '/etc/passwd'], check=False)
        except rt.LabError as exc:
            LOG.warning('%s: /etc/hosts stays mounted: %s', compute.name,
                        exc)
