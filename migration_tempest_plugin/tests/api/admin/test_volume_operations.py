"""Live migration of guests with cinder volumes, judged by the oracle on
every disk the guest has.

The integrity guest writes its root disk (vda) and, with
``mtp.disk2=/dev/vdb`` on its kernel command line (an image property),
its second disk: here a cinder volume attached when the server is
created, so that the guest finds it at boot (records tagged ``vdb``, the
volume labelled by the guest itself: doc/source/oracle.rst, "A second
disk").  Each test reads every written disk back where it lives: the
root disk under the instances path or in Ceph (tests.base.disk_source),
each volume where cinder says it is (hosts.volumes: an RBD image, or the
logical volume on its LVM volume host) and, where a test is about what
the guest's domain uses, through the disk source in that domain's XML on
its compute host.

The bugs behind these tests: a block migration copied attached volumes
onto themselves (nova #1398999; #1719362, an empty migrate_disks; later
regressions #1939545, #1778206); a swapped volume whose libvirt XML kept
the old volume's serial (#2112187).
"""

from oslo_log import log as logging
from tempest.common import waiters
from tempest import config
from tempest.lib.common.utils import data_utils
from tempest.lib.common.utils import test_utils
from tempest.lib import decorators

from migration_tempest_plugin.hosts import access
from migration_tempest_plugin.hosts import libvirt_log
from migration_tempest_plugin.hosts import volumes as volumelib
from migration_tempest_plugin import storage_modes
from migration_tempest_plugin.tests import base
from migration_tempest_plugin.tests import console_log

CONF = config.CONF
LOG = logging.getLogger(__name__)

# The guest's second agent writes the device of mtp.disk2 and tags its
# records with the device's name (integrity.guest.SECOND_DISK_OPTION).
VOLUME_DEV = 'vdb'
VOLUME_TAG = 'vdb'


class VolumeIntegrityTestBase(base.MigrationIntegrityTestBase):
    """A writing guest with cinder volumes, moved by nova.

    Servers and volumes belong to the project's member, as in tempest's
    own volume tests; admin only migrates, reads the volume's back end
    (os-vol-host-attr:host, name_id, the pools' location_info), creates
    volume types and retypes nothing it does not own.
    """

    # 2.60: multiattach volumes in a server's block device mapping and in
    # a volume attach (the base's 2.74 includes it).
    min_microversion = '2.74'

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.service_available.cinder:
            raise cls.skipException('cinder is not available '
                                    '([service_available] cinder is off)')

    @classmethod
    def setup_clients(cls):
        super().setup_clients()
        # The member's volumes_client comes from the compute base class.
        cls.admin_volumes_client = cls.os_admin.volumes_client_latest
        cls.admin_volume_types_client = \
            cls.os_admin.volume_types_client_latest
        cls.admin_pools_client = \
            cls.os_admin.volume_scheduler_stats_client_latest

    # -- volumes --------------------------------------------------------------

    def create_test_volume(self, **kwargs):
        """A volume of the member's, available, deleted at the end of the
        test once whatever server had it is gone."""
        kwargs.setdefault('size', CONF.volume.volume_size)
        kwargs.setdefault('name', data_utils.rand_name(
            prefix=CONF.resource_name_prefix,
            name=self.__class__.__name__ + '-volume'))
        if CONF.volume.volume_type and 'volume_type' not in kwargs:
            kwargs['volume_type'] = CONF.volume.volume_type
        if CONF.compute.compute_volume_common_az:
            kwargs.setdefault('availability_zone',
                              CONF.compute.compute_volume_common_az)
        volume = self.volumes_client.create_volume(**kwargs)['volume']
        # Cleanups run last in, first out: the server goes first (its
        # cleanups come later), then the volume, once detached.
        self.addCleanup(self.volumes_client.wait_for_resource_deletion,
                        volume['id'])
        self.addCleanup(test_utils.call_and_ignore_notfound_exc,
                        self.volumes_client.delete_volume, volume['id'])
        self.addCleanup(self._wait_until_detached, volume['id'])
        waiters.wait_for_volume_resource_status(self.volumes_client,
                                                volume['id'], 'available')
        return volume

    def _wait_until_detached(self, volume_id):
        try:
            waiters.wait_for_volume_resource_status(
                self.volumes_client, volume_id, 'available')
        except Exception as exc:
            LOG.warning('cleanup: volume %s did not become available: %s',
                        volume_id, exc)

    @staticmethod
    def volume_bdm(volume_id, boot_index=-1):
        """A block_device_mapping_v2 entry that attaches an existing volume
        when the server is created (the guest sees it at boot)."""
        return {'uuid': volume_id, 'source_type': 'volume',
                'destination_type': 'volume', 'boot_index': boot_index,
                'delete_on_termination': False}

    @staticmethod
    def image_bdm():
        """The root disk from the integrity image, on the compute's image
        backend (local or rbd), as nova makes it from imageRef."""
        return {'uuid': CONF.migration.image_ref, 'source_type': 'image',
                'destination_type': 'local', 'boot_index': 0,
                'delete_on_termination': True}

    def volume_location(self, volume_id, host=None, skip=False):
        """Where cinder keeps the volume now (hosts.volumes.locate), an RBD
        image read with `host`'s credentials (default: the source's).  When
        the tests cannot read it back: with `skip` (a look before the
        volume's first move) the test skips, saying why; else it fails."""
        volume = self.admin_volumes_client.show_volume(volume_id)['volume']
        pools = self.admin_pools_client.list_pools(detail=True)['pools']
        user, conf = self.rbd_credentials(host or self.source)
        try:
            return volumelib.locate(volume, pools, user, conf,
                                    hosts=tuple(self.hosts))
        except volumelib.VolumeNotReadable as exc:
            if skip:
                raise self.skipException('cannot read the volume back: %s'
                                         % exc)
            self.fail('cannot read the volume back: %s' % exc)

    def attached_device(self, server_id, volume_id):
        """The device name nova gives the volume in the server (vdb)."""
        for attachment in self.servers.list_volume_attachments(
                server_id)['volumeAttachments']:
            if attachment['volumeId'] == volume_id:
                return attachment['device'].rsplit('/', 1)[-1]
        self.fail('volume %s is not attached to %s' % (volume_id, server_id))

    def domain_source(self, server_id, dev, host):
        """The source of the guest's disk `dev` in its domain on `host`:
        what the guest really reads and writes there."""
        disks = access.domain_disks(
            self.hosts[host].domain_xml(server_id),
            *self.rbd_credentials(host))
        self.assertIn(dev, disks, 'the domain of %s on %s has no disk %s '
                      'that the tests can read: %s' % (
                          server_id, host, dev, disks))
        return disks[dev]

    def wait_for_volume_writes(self, recorder, acks=base.ACKS_BEFORE,
                               tag=VOLUME_TAG, runs=1):
        """The volume's agent acknowledged `acks` writes in its run
        `runs`."""
        recorder.wait_for(
            lambda h: (len(h.runs) >= runs and
                       self.acks_in_last_run(h) >= acks),
            '%d writes on the volume (%s) in its run %d' % (acks, tag, runs),
            CONF.compute.build_timeout, tag=tag)

    def keep_writing_both(self, recorder):
        """ACKS_AFTER more writes on the root disk and on the volume."""
        self.keep_writing(recorder)
        done = recorder.history(VOLUME_TAG).acked_writes
        self.wait_for_volume_writes(recorder, done + base.ACKS_AFTER)

    def assert_volume_intact(self, server_id, recorder, volume_id, host,
                             dev=VOLUME_DEV, tag=VOLUME_TAG,
                             name='check-volume'):
        """The volume keeps every write the guest acknowledged on it,
        read where cinder keeps it, and through the disk the guest's
        domain on `host` uses, which must be that volume; return cinder's
        location."""
        where = self.volume_location(volume_id, host)
        self.assert_intact(server_id, recorder, where.host or host,
                           name=name, tag=tag, source=where.source)
        used = self.domain_source(server_id, dev, host)
        if isinstance(where.source, access.RbdImage):
            # The same RBD image, whatever cephx user each side reads with.
            self.assertEqual(where.source.spec, getattr(used, 'spec', used),
                             'the guest %s on %s uses %s as %s, not the '
                             'volume %s that cinder has' % (
                                 server_id, host, used, dev, volume_id))
        else:
            # An iSCSI or other host device: another path on each host;
            # its content must be the volume's.
            self.assert_intact(server_id, recorder, host,
                               name=name + '-as-attached', tag=tag,
                               source=used)
        return where

    def live_migrate_and_check(self, server_id, recorder, volume_id):
        """A live migration with block_migration=auto of a server with
        its root disk from the image and the volume at vdb: nova's flags
        for the storage, and on local disks a copy of vda only (never the
        volume); then the root disk and the volume keep every write the
        guest acknowledged, on the destination."""
        self.live_migrate(server_id, self.dest, 'auto')
        self.audit_flags(server_id, self.source,
                         self.expected_flags(self.block_by_storage))
        self.audit_copied_disks(server_id, self.source,
                                ['vda'] if self.block_by_storage else [])
        self.keep_writing_both(recorder)
        self.assert_intact(server_id, recorder, self.dest)
        self.assert_volume_intact(server_id, recorder, volume_id, self.dest)

    def boot_with_volume(self, volume_id=None, **kwargs):
        """The integrity guest with its root disk from the image and the
        volume (a new one unless given) at vdb from the start; return
        (server, recorder, volume id) once both disks have
        ACKS_BEFORE writes acknowledged."""
        if volume_id is None:
            volume_id = self.create_test_volume()['id']
        # A back end the tests cannot read skips here, before any move:
        # after one, a failure to read the volume is the test's failure.
        self.volume_location(volume_id, skip=True)
        server, recorder = self.create_integrity_server(
            block_device_mapping_v2=[self.image_bdm(),
                                     self.volume_bdm(volume_id)], **kwargs)
        self.assertEqual(VOLUME_DEV,
                         self.attached_device(server['id'], volume_id))
        self.wait_for_volume_writes(recorder)
        return server, recorder, volume_id


class BlockMigrationWithVolumeTest(VolumeIntegrityTestBase):
    """A block live migration of a guest on local disks with a cinder
    volume attached: nova copies the local disks and never the volume."""

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if storage_modes.shared_disks(CONF.migration.storage):
            raise cls.skipException(
                'a block migration needs local instance disks; nova '
                'refuses it on [migration] storage = %s' %
                CONF.migration.storage)

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('5b845573-13ba-4de5-9aec-76bd28eaf9fe')
    def test_block_migration_copies_root_not_volume(self):
        """block_migration=true with a volume at vdb: nova names only vda
        in migrate_disks and the source's QEMU mirrors only vda to the
        destination (the volume is not copied onto itself: #1398999,
        #1719362, #1939545, #1778206); the root disk and the volume keep
        every acknowledged write, and the guest writes both on at the
        destination, whose domain uses the same volume."""
        volume_id = self.create_test_volume()['id']
        where = self.volume_location(volume_id, skip=True)
        if (isinstance(where.source, access.BlockDevice) and not
                CONF.compute_feature_enabled.block_migrate_cinder_iscsi):
            raise self.skipException(
                'the volume is a logical volume that nova attaches over '
                'iSCSI, and [compute-feature-enabled] '
                'block_migrate_cinder_iscsi is off')
        server, recorder, volume_id = self.boot_with_volume(volume_id)
        self.live_migrate(server['id'], self.dest, True)
        self.audit_flags(server['id'], self.source,
                         self.expected_flags(True))
        self.audit_copied_disks(server['id'], self.source, ['vda'])
        self.keep_writing_both(recorder)
        self.assert_intact(server['id'], recorder, self.dest)
        self.assert_volume_intact(server['id'], recorder, volume_id,
                                  self.dest)


class VolumeBackedLiveMigrationTest(VolumeIntegrityTestBase):
    """A server booted from a volume, with a second volume and no local
    disk: nova counts its disks as shared on every storage and moves only
    its memory."""

    copies_local_disks = False

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.compute_feature_enabled.volume_backed_live_migration:
            raise cls.skipException('[compute-feature-enabled] '
                                    'volume_backed_live_migration is off')

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('3edb1e18-60bd-416c-9252-14338d4fed8d')
    def test_volume_backed_live_migration_keeps_acknowledged_writes(self):
        """block_migration=auto: nova chooses a live migration without a
        disk copy (no NON_SHARED flag, no migrate_disks, no mirror), and
        the boot volume (vda) and the data volume (vdb) keep every write
        the guest acknowledged before, during and after it."""
        root = self.create_test_volume(imageRef=CONF.migration.image_ref)
        data = self.create_test_volume()
        for volume in (root, data):
            self.volume_location(volume['id'], skip=True)
        server, recorder = self.create_integrity_server(
            image_id='', block_device_mapping_v2=[
                self.volume_bdm(root['id'], boot_index=0),
                self.volume_bdm(data['id'])])
        self.assertEqual('vda', self.attached_device(server['id'],
                                                     root['id']))
        self.assertEqual(VOLUME_DEV, self.attached_device(server['id'],
                                                          data['id']))
        self.wait_for_volume_writes(recorder)
        self.live_migrate(server['id'], self.dest, 'auto')
        self.audit_flags(server['id'], self.source,
                         self.expected_flags(False))
        self.audit_copied_disks(server['id'], self.source, [])
        self.keep_writing_both(recorder)
        self.assert_volume_intact(server['id'], recorder, root['id'],
                                  self.dest, dev='vda', tag=None,
                                  name='check-boot-volume')
        self.assert_volume_intact(server['id'], recorder, data['id'],
                                  self.dest)


class SwappedVolumeLiveMigrationTest(VolumeIntegrityTestBase):
    """A volume that cinder moves to another back end while attached,
    through nova's swap (cinder calls PUT
    /servers/{id}/os-volume_attachments/{volume id} with the new volume,
    and nova copies the disk under the running guest), then the server
    live-migrated.

    Since the fix of nova bug #2112187 nova refuses that PUT unless
    cinder is migrating the volume ("this API should only be called by
    Cinder"): a user swaps a volume by a cinder retype (or an admin's
    migrate), as here.  The bug: after a swap called directly, the
    domain's XML kept the old volume's serial, so a later live migration
    could not match the disk with its block device mapping."""

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.volume_feature_enabled.multi_backend:
            raise cls.skipException('moving an attached volume to another '
                                    'back end needs [volume-feature-enabled] '
                                    'multi_backend')
        if len(set(CONF.volume.backend_names)) < 2:
            raise cls.skipException('moving an attached volume needs two '
                                    'back ends in [volume] backend_names')

    def _volume_type(self, backend):
        """A public volume type (admin) whose volumes go to `backend`."""
        volume_type = self.admin_volume_types_client.create_volume_type(
            name=data_utils.rand_name(prefix=CONF.resource_name_prefix,
                                      name='mtp-%s' % backend),
            extra_specs={'volume_backend_name': backend})['volume_type']
        self.addCleanup(test_utils.call_and_ignore_notfound_exc,
                        self.admin_volume_types_client.delete_volume_type,
                        volume_type['id'])
        return volume_type

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('1cbebcfb-b1de-4387-b26d-7786ff5588d2')
    def test_swapped_volume_follows_live_migration(self):
        """A retype with on-demand migration moves the attached volume
        (vdb) to the other back end while the guest writes it: nova swaps
        the disk under the guest (a block copy in the source's libvirtd
        log); the live migration that follows takes the new volume along:
        the destination's domain uses the volume where cinder now keeps it
        (#2112187), which holds every write the guest acknowledged before,
        during and after the swap and the migration."""
        first, second = sorted(set(CONF.volume.backend_names))[:2]
        old_type = self._volume_type(first)
        new_type = self._volume_type(second)
        volume = self.create_test_volume(volume_type=old_type['name'])
        server, recorder, volume_id = self.boot_with_volume(volume['id'])
        before = self.volume_location(volume_id, skip=True)
        host = self.get_host_for_server(server['id'])
        mark = self.hosts[host].libvirtd_log_size()
        self.volumes_client.retype_volume(volume_id,
                                          new_type=new_type['name'],
                                          migration_policy='on-demand')
        waiters.wait_for_volume_migration(self.admin_volumes_client,
                                          volume_id, '@%s#' % second)
        waiters.wait_for_volume_retype(self.volumes_client, volume_id,
                                       new_type['name'])
        waiters.wait_for_volume_resource_status(self.volumes_client,
                                                volume_id, 'in-use')
        # The second back end is first seen here: one the tests cannot
        # read skips (a configuration), as on the first.
        after = self.volume_location(volume_id, skip=True)
        self.assertNotEqual(before.source, after.source,
                            'cinder kept the volume where it was')
        swapped = libvirt_log.domain_calls(
            self.hosts[host].libvirtd_log_since(mark), 'virDomainBlockCopy',
            server['id']) or libvirt_log.domain_calls(
            self.hosts[host].libvirtd_log_since(mark),
            'virDomainBlockRebase', server['id'])
        self.assertTrue(swapped, 'no block copy of %s in the libvirtd log '
                        'of %s: cinder moved the volume without nova\'s '
                        'swap (a back-end assisted move?); the test needs '
                        'back ends between which cinder copies an attached '
                        'volume through nova' % (server['id'], host))
        self.save_report('swap', server['id'], {
            'volume': volume_id, 'before': repr(before.source),
            'after': repr(after.source), 'block_copy_lines': swapped})
        self.keep_writing_both(recorder)
        self.live_migrate_and_check(server['id'], recorder, volume_id)


# What the guest's /init prints when no second disk came at boot
# (integrity.initramfs): its second agent will never start.
NO_SECOND_DISK = 'MTP NOTE no /dev/%s' % VOLUME_DEV


class MultiattachVolumeLiveMigrationTest(VolumeIntegrityTestBase):
    """One volume attached to two servers; the one that writes it is
    live-migrated while the other stays."""

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.compute_feature_enabled.volume_multiattach:
            raise cls.skipException('[compute-feature-enabled] '
                                    'volume_multiattach is off')

    def _wait_for_console(self, server_id, text):
        """Wait until `text` is in the server's console log."""
        recorder = self.useFixture(console_log.ConsoleLogRecorder(
            self.hosts, server_id,
            host_of=lambda: self.get_host_for_server(server_id),
            shared=storage_modes.shared_instances_path(
                CONF.migration.storage)))
        if not test_utils.call_until_true(
                lambda: any(text in t for t in recorder.texts()),
                CONF.compute.build_timeout, 1):
            self.fail('%r never appeared on the console of %s' % (
                text, server_id))

    def _multiattach_type(self):
        if CONF.volume.volume_type_multiattach:
            return CONF.volume.volume_type_multiattach
        volume_type = self.admin_volume_types_client.create_volume_type(
            name=data_utils.rand_name(prefix=CONF.resource_name_prefix,
                                      name='mtp-multiattach'),
            extra_specs={'multiattach': '<is> True'})['volume_type']
        self.addCleanup(test_utils.call_and_ignore_notfound_exc,
                        self.admin_volume_types_client.delete_volume_type,
                        volume_type['id'])
        return volume_type['name']

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('610b71a4-93e0-4ea3-b1b4-bfe47fdc4965')
    def test_multiattach_volume_consistent_from_both_servers(self):
        """The writer (volume at vdb from its boot) and a reader (the
        volume attached after its boot, so its guest never writes it) on
        one volume; the writer is live-migrated (the volume, a shareable
        disk, is never copied: only vda on local storage).  Afterwards the
        volume where cinder keeps it, and as each server's domain uses it
        on its own host, holds every write the writer acknowledged."""
        volume = self.create_test_volume(
            volume_type=self._multiattach_type())
        self.assertTrue(volume['multiattach'], 'the volume type does not '
                        'make multiattach volumes')
        writer, recorder, volume_id = self.boot_with_volume(volume['id'])
        filters = CONF.compute_feature_enabled.scheduler_enabled_filters
        placement = {}
        if 'DifferentHostFilter' in filters or 'all' in filters:
            # On the other host if the scheduler can: the volume is then
            # attached on both hosts while the writer moves.  (Only when
            # set: tempest leaves an empty scheduler_hints in the server's
            # body, which nova's schema refuses.)
            placement['scheduler_hints'] = {'different_host': [writer['id']]}
        reader = self.create_test_server(
            image_id=CONF.migration.image_ref,
            flavor=CONF.migration.flavor_ref or CONF.compute.flavor_ref,
            wait_until='ACTIVE', **placement)
        self.addCleanup(waiters.wait_for_server_termination, self.servers,
                        reader['id'])
        self.addCleanup(test_utils.call_and_ignore_notfound_exc,
                        self.servers.delete_server, reader['id'])
        # Attached only once the reader's /init has given up waiting for a
        # vdb (it waits 3 s at boot): attached sooner, its own agent would
        # start writing the volume too (seen on the lab cloud: 777 blocks
        # of another run among the writer's).
        self._wait_for_console(reader['id'], NO_SECOND_DISK)
        self.attach_volume(reader, volume, wait_for_detach=False)
        reader_host = self.get_host_for_server(reader['id'])
        self.save_report('multiattach', writer['id'], {
            'writer_host': self.source, 'reader': reader['id'],
            'reader_host': reader_host})
        self.live_migrate_and_check(writer['id'], recorder, volume_id)
        # The reader sees the same bytes: read through its own domain's
        # disk, on its own host, the writer paused.
        dev = self.attached_device(reader['id'], volume_id)
        self.assert_intact(writer['id'], recorder, reader_host,
                           name='check-volume-as-the-reader-has-it',
                           tag=VOLUME_TAG,
                           source=self.domain_source(reader['id'], dev,
                                                     reader_host))
