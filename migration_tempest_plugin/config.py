"""The plugin's options, in a [migration] group.

Whether the cloud can live or block migrate at all stays where tempest keeps
it ([compute-feature-enabled] live_migration and
block_migration_for_live_migration); this group says how, so that the tests
know which flags nova must have used and what must happen to the disk.
"""

from oslo_config import cfg

from migration_tempest_plugin import storage_modes

migration_group = cfg.OptGroup(
    name='migration',
    title='Migration integrity options',
    help='How the cloud under test stores instances, which nova migration '
         'options it runs with, and how to reach its compute hosts.')

MigrationOpts = [
    cfg.StrOpt('storage',
               default='local',
               choices=storage_modes.plugin_kinds(),
               help='Kind of instance storage of the cloud under test.'),
    cfg.BoolOpt('live_migration_tunnelled', default=False,
                help="Mirror of nova's [libvirt] live_migration_tunnelled on "
                     'the compute hosts.'),
    cfg.BoolOpt('live_migration_with_native_tls', default=False,
                help="Mirror of nova's [libvirt] "
                     'live_migration_with_native_tls.'),
    cfg.BoolOpt('live_migration_permit_post_copy', default=False,
                help="Mirror of nova's [libvirt] "
                     'live_migration_permit_post_copy.'),
    cfg.BoolOpt('live_migration_permit_auto_converge', default=False,
                help="Mirror of nova's [libvirt] "
                     'live_migration_permit_auto_converge.'),
    cfg.IntOpt('live_migration_parallel_connections', default=1, min=1,
               help="Mirror of nova's [libvirt] "
                    'live_migration_parallel_connections.'),
    cfg.IntOpt('migration_timeout', default=600, min=30,
               help='Seconds to wait for one migration to finish; block '
                    'migrations on slow nodes can outlast build_timeout.'),
    cfg.StrOpt('image_ref',
               help='Glance image holding the integrity guest (kernel and '
                    'ramdisk set as image properties). When unset the tests '
                    'that need it are skipped.'),
    cfg.StrOpt('flavor_ref',
               help='Flavor for the integrity guest; defaults to '
                    '[compute] flavor_ref.'),
    cfg.StrOpt('resize_flavor_ref',
               help='Flavor for the resize tests: the integrity guest\'s '
                    'flavor with a larger root disk. When unset those tests '
                    'are skipped.'),
    cfg.StrOpt('disks_flavor_ref',
               help='Flavor with an ephemeral and a swap disk beside root, '
                    'for the several-disks tests. When unset those tests are '
                    'skipped.'),
    cfg.StrOpt('host_access',
               default='none',
               choices=[('none', 'no access: the flag audit is skipped'),
                        ('ssh', 'SSH to the compute hosts'),
                        ('lab', 'the embedded lab cloud on this machine')],
               help='How to reach compute hosts for the flag audit '
                    '(libvirtd log) and nova.conf changes.'),
    cfg.StrOpt('compute_hosts_file',
               help='YAML file mapping each nova-compute host name to how '
                    'to reach it: address, user and key_file (ssh), '
                    'instances_path, libvirtd_log_path, nova_conf (the '
                    'nova.conf that nova-compute reads; while a test runs '
                    'it with other options, the original is kept beside '
                    'it as <nova_conf>.migration-tempest-orig, and one left '
                    'there by a killed run is restored before the next '
                    'change), qemu_pid_dir (default /run/libvirt/qemu), and '
                    'shell commands run as root on that host: '
                    'restart_command (restarts nova-compute), '
                    'compute_stop_command, compute_start_command, '
                    'libvirt_stop_command and libvirt_start_command.'),
    cfg.StrOpt('ssh_user', default='stack',
               help='User for SSH to compute hosts; commands run through '
                    'sudo (without a password) unless it is root.'),
    cfg.StrOpt('ssh_key_file',
               help='Private key for SSH to compute hosts.'),
    cfg.StrOpt('libvirtd_log_path', default='/var/log/libvirt/libvirtd.log',
               help='libvirtd debug log on each compute host, with the '
                    'public API logged so the migrate call flags show.'),
    cfg.BoolOpt('reconfigure_computes', default=True,
                help="Whether the tests may change nova's [libvirt] "
                     'migration options in the nova.conf of the compute '
                     'hosts (through host_access), restart nova-compute, '
                     'and restore the files afterwards. When false, the '
                     'tests of other configurations than the one the cloud '
                     'runs with are skipped.'),
    cfg.ListOpt('known_bugs', default=[],
                help='Findings of this suite that the cloud under test is '
                     'known to have, by name; the test that shows each '
                     'skips, naming it (README, "Known findings"). '
                     'config-drive-block-migration: a block live migration '
                     'leaves an empty config drive (ISO 9660) on the '
                     'destination. rolled-back-to-error: after rolling a '
                     'live migration back, nova sets the server to ERROR '
                     '(the tests that show it record it, reset the server '
                     'to active and go on). '
                     'force-complete-ignored-in-disk-copy: with post-copy '
                     'permitted, a force-complete during the disk copy of a '
                     'block migration does not end it (the test records '
                     'it, aborts the migration and goes on).'),
    cfg.BoolOpt('fail_hosts', default=False,
                help='Whether the evacuate tests may make a compute host '
                     'fail as a real one does: stop its nova-compute, kill '
                     'its libvirtd and the guest\'s QEMU (the compute hosts '
                     'file\'s compute_stop_command, libvirt_stop_command and '
                     'their start commands), force its service down, and '
                     'bring it all back afterwards.'),
    cfg.IntOpt('slow_migration_bandwidth', default=4, min=1,
               help="MiB/s to which the abort and force-complete tests cap "
                    "nova's [libvirt] live_migration_bandwidth, so that a "
                    'migration lasts long enough to act on it.'),
    cfg.StrOpt('images_rbd_pool', default='vms',
               help="Mirror of nova's [libvirt] images_rbd_pool on the "
                    'compute hosts, with storage = rbd: the root disk of '
                    'instance <uuid> is the RBD image <pool>/<uuid>_disk, '
                    'read back there.'),
    cfg.StrOpt('rbd_user', default='admin',
               help='Cephx user (without "client.") with which the tests '
                    'read RBD images back on a compute host: instance disks '
                    '(storage = rbd) and cinder volumes on an RBD backend. '
                    'Its keyring must be where rbd_ceph_conf points on '
                    'every compute host.'),
    cfg.StrOpt('rbd_ceph_conf', default='/etc/ceph/ceph.conf',
               help='ceph.conf on the compute hosts for rbd_user.'),
    cfg.StrOpt('report_dir',
               help='Folder for per-test integrity reports (JSON).'),
]


def register_opts(conf):
    conf.register_group(migration_group)
    conf.register_opts(MigrationOpts, group=migration_group)


def list_opts():
    """For oslo-config-generator and the plugin's get_opt_lists()."""
    return [(migration_group.name, MigrationOpts)]
