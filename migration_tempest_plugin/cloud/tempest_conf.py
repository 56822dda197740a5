"""A tempest workspace for the lab cloud.

``<cloud>/tempest/`` holds ``etc/tempest.conf`` (rendered here),
``etc/compute-hosts.yaml`` (how the plugin's host access reaches each lab
compute) and ``logs/``.  Run tempest from that folder::

    cd /var/tmp/migration-lab/cloud/tempest
    tempest run --config-file etc/tempest.conf --regex migration_tempest_plugin

(tempest writes its .stestr.conf there on the first run).
"""

import collections
import os
import shlex
import sys

import yaml

from migration_tempest_plugin.cloud import config as cfg

# What this suite found on nova 34 and libvirt 9.0, the lab cloud's (README,
# "Known findings"): the test that shows one skips, or records it and goes
# on, naming it.
KNOWN_BUGS = ('config-drive-block-migration', 'rolled-back-to-error',
              'force-complete-ignored-in-disk-copy')


def tempest_sections(s, ids, hosts_file, workspace, ssh_key_file=None):
    """{section: {option: value}} of tempest.conf.

    `ids` holds the bootstrap's image_id and flavors {'guest', 'alt'}.
    Block migration is what live migration does on local storage; on the
    shared instances path and on RBD it is a plain live migration.
    Every storage mode has cinder, with volumes on the lab's Ceph.
    """
    block = s.storage == 'local'
    migration = cfg.migration_options(s.migration)
    flavors = ids['flavors']
    sections = collections.OrderedDict()
    sections['DEFAULT'] = collections.OrderedDict([
        ('log_dir', os.path.join(workspace, 'logs')),
        ('log_file', 'tempest.log'),
    ])
    sections['oslo_concurrency'] = {'lock_path': os.path.join(workspace,
                                                              'lock')}
    sections['auth'] = collections.OrderedDict([
        ('admin_username', cfg.ADMIN_USER),
        ('admin_password', s.secrets['admin']),
        ('admin_project_name', cfg.ADMIN_PROJECT),
        ('admin_domain_name', cfg.DOMAIN),
        ('default_credentials_domain_name', cfg.DOMAIN),
        # Member (and alt) credentials are made per test class from the
        # admin ones; the lab's own member user is in clouds.yaml.
        ('use_dynamic_credentials', True),
        ('create_isolated_networks', False),
    ])
    sections['identity'] = collections.OrderedDict([
        ('uri_v3', s.auth_url),
        ('auth_version', 'v3'),
        ('region', cfg.REGION),
        ('v3_endpoint_type', 'public'),
    ])
    sections['identity-feature-enabled'] = {'api_v2': False}
    sections['compute'] = collections.OrderedDict([
        ('image_ref', ids['image_id']),
        ('image_ref_alt', ids['image_id']),
        ('flavor_ref', flavors['guest']),
        ('flavor_ref_alt', flavors['alt']),
        ('min_compute_nodes', 2),
        ('min_microversion', '2.1'),
        ('max_microversion', 'latest'),
        ('region', cfg.REGION),
        ('endpoint_type', 'publicURL'),
        ('build_timeout', 300),
        ('fixed_network_name', ''),
    ])
    sections['compute-feature-enabled'] = collections.OrderedDict([
        ('live_migration', True),
        ('block_migration_for_live_migration', block),
        ('block_migrate_cinder_iscsi', False),
        ('live_migrate_back_and_forth', False),
        # Cold migration and resize reach the other compute over SSH (disk
        # copy, shared-path probe): each lab node runs an sshd (cloud.ssh).
        ('cold_migration', True),
        ('resize', True),
        # As devstack writes it: the filters nova's scheduler runs.
        ('scheduler_enabled_filters', ','.join(cfg.SCHEDULER_FILTERS)),
        ('console_output', True),
        ('vnc_console', False),
        ('spice_console', False),
        ('serial_console', False),
        ('rescue', False),
        ('shelve', True),
        ('shelve_migrate', True),
        ('snapshot', True),
        ('suspend', False),
        ('change_password', False),
        ('config_drive', False),
        ('personality', False),
        ('interface_attach', False),
        ('attach_encrypted_volume', False),
        # cinder 29's RBD driver reports multiattach (it turns off the
        # image features that need an exclusive lock), and nova attaches
        # an RBD network disk to several guests as shareable.
        ('volume_multiattach', True),
        # nova's libvirt driver copies an attached disk to the new volume
        # (blockdev-mirror) for PUT os-volume_attachments.
        ('swap_volume', True),
        ('volume_backed_live_migration', True),
        ('can_migrate_between_any_hosts', True),
    ])
    sections['service_available'] = collections.OrderedDict([
        ('nova', True), ('glance', True), ('neutron', True),
        ('cinder', True), ('swift', False), ('heat', False),
        ('horizon', False),
    ])
    sections['network'] = collections.OrderedDict([
        ('project_networks_reachable', False),
        ('shared_physical_network', False),
        ('region', cfg.REGION),
    ])
    sections['volume'] = collections.OrderedDict([
        ('catalog_type', cfg.APIS['cinder-api'][3]),
        ('region', cfg.REGION),
        ('endpoint_type', 'publicURL'),
        ('backend_names', '%s,%s' % (cfg.CINDER_BACKEND,
                                     cfg.CINDER_BACKEND2)),
        ('storage_protocol', 'ceph'),
        ('vendor_name', 'Open Source'),
        ('volume_size', 1),
        ('build_timeout', 300),
        ('min_microversion', '3.0'),
        ('max_microversion', 'latest'),
    ])
    sections['volume-feature-enabled'] = collections.OrderedDict([
        # Two RBD back ends (cloud/cinder.py): a retype moves an attached
        # volume through nova's swap.
        ('multi_backend', True),
        # No cinder-backup service in the lab cloud.
        ('backup', False),
        ('snapshot', True),
        ('clone', True),
        ('manage_snapshot', False),
        ('manage_volume', False),
        ('extend_attached_volume', False),
        ('extend_volume_with_snapshot', True),
    ])
    sections['image'] = {'region': cfg.REGION}
    sections['placement'] = {'region': cfg.REGION}
    sections['validation'] = collections.OrderedDict([
        ('run_validation', False),
        ('image_ssh_user', 'root'),
    ])
    sections['migration'] = collections.OrderedDict([
        ('storage', cfg.PLUGIN_STORAGE[s.storage]),
        # As Zuul reaches devstack subnodes: SSH to each compute's address
        # (the lab's own test hosts), with the tests' own key.
        ('host_access', 'ssh'),
        ('ssh_user', 'root'),
        ('ssh_key_file', ssh_key_file),
        # The lab's nova.conf files are ours: the tests may change them.
        ('reconfigure_computes', True),
        # ... and its nodes too: the evacuate tests fail one and bring it
        # back (the compute hosts file's stop and start commands).
        ('fail_hosts', True),
        ('known_bugs', ','.join(KNOWN_BUGS)),
        ('image_ref', ids['image_id']),
        ('flavor_ref', flavors['guest']),
        ('resize_flavor_ref', flavors.get('bigger')),
        ('disks_flavor_ref', flavors.get('disks')),
        ('compute_hosts_file', hosts_file),
        ('libvirtd_log_path', '/var/log/libvirt/libvirtd.log'),
        ('report_dir', os.path.join(workspace, 'reports')),
    ])
    for key in cfg.MIGRATION_OPTIONS:
        sections['migration'][key] = migration[key]
    return sections


def tempest_conf(s, ids, hosts_file, workspace, ssh_key_file=None):
    return cfg.render_ini(tempest_sections(s, ids, hosts_file, workspace,
                                           ssh_key_file), cfg.HEADER)


def _cloud_command(step, compute, state_dir, *extra):
    """A shell command that runs the lab cloud's `step` for one compute;
    run over SSH inside that node, as systemctl runs on a devstack host."""
    return shlex.join([sys.executable, '-m', 'migration_tempest_plugin.cloud',
                       step, compute.name, '--state-dir', state_dir]
                      + list(extra))


def compute_hosts(s, nodes, state_dir):
    """The compute-hosts file: per hypervisor hostname, how to reach that
    lab node.  `nodes` are (ComputeNode, lab node) pairs."""
    # host_access = ssh (what the workspace's tempest.conf says) reads
    # `address`, `instances_path`, `libvirtd_log_path`, `nova_conf` and
    # the shell commands, which run as root in the node over SSH.
    # host_access = lab reads `enter` (the argv prefix into the node's
    # namespaces), `libvirtd_log` (its path on this machine) and
    # `restart`: kept for debugging the plugin without SSH.
    out = {}
    for compute, node in nodes:
        out[compute.name] = {
            'address': compute.address,
            'user': 'root',
            'libvirtd_log_path': '/var/log/libvirt/libvirtd.log',
            'restart_command': _cloud_command(
                'restart-compute', compute, state_dir, '--no-wait'),
            'compute_stop_command': _cloud_command(
                'stop-compute', compute, state_dir),
            'compute_start_command': _cloud_command(
                'start-compute', compute, state_dir),
            'libvirt_stop_command': _cloud_command(
                'kill-libvirtd', compute, state_dir),
            'libvirt_start_command': _cloud_command(
                'start-libvirtd', compute, state_dir),
            'node': node.name,
            'service_host': compute.name,
            'nova_conf': os.path.join(s.nova_compute_dir(compute.name),
                                      'nova.conf'),
            'nova_compute_log': s.path('logs', 'nova-compute-%s.log'
                                       % compute.name),
            'libvirtd_log': node.libvirtd_log,
            'libvirt_uri': node.uri,
            'instances_path': compute.instances_path,
            # Where the disks live when they are not files under
            # instances_path: instance disks with images_type rbd are the
            # images <rbd_pool>/<uuid>_disk (_disk.local, _disk.swap);
            # inside the node, `rbd --id <rbd_user> -c <rbd_ceph_conf>
            # export POOL/IMAGE -` reads one (qemu-img takes
            # rbd:POOL/IMAGE:id=USER:conf=CONF).  A cinder volume's pool is
            # in its back end's location_info (hosts/volumes.py).
            'images_type': 'rbd' if s.images_rbd else 'default',
            'rbd_pool': s.ceph.vms_pool,
            'rbd_user': s.ceph.user,
            'rbd_ceph_conf': s.ceph.conf,
            'enter': node.argv([]),
            'restart': [sys.executable, '-m', 'migration_tempest_plugin.cloud',
                        'restart-compute', compute.name,
                        '--state-dir', state_dir],
        }
    return yaml.safe_dump(out, default_flow_style=False, sort_keys=False)


def write_workspace(s, ids, nodes, state_dir, ssh_key_file=None):
    """Write the workspace; return the path of its tempest.conf."""
    workspace = s.path('tempest')
    for sub in ('etc', 'logs', 'lock', 'reports'):
        os.makedirs(os.path.join(workspace, sub), exist_ok=True)
    hosts_file = os.path.join(workspace, 'etc', 'compute-hosts.yaml')
    with open(hosts_file, 'w') as f:
        f.write(compute_hosts(s, nodes, state_dir))
    conf = os.path.join(workspace, 'etc', 'tempest.conf')
    with open(conf + '.tmp', 'w') as f:
        f.write(tempest_conf(s, ids, hosts_file, workspace, ssh_key_file))
    os.replace(conf + '.tmp', conf)
    return conf
