"""``nfs``: the seed's NFS for real.

NFSv3 served by ``nfs-ganesha`` (VFS backend, with ``rpcbind``) in the
storage sandbox, and QEMU's own NFS client (libnfs, from
``qemu-block-extra``) on the nodes: the disk is a libvirt network disk,
``nfs://10.254.0.253/srv/lab/nfs/...``.  libnfs speaks NFSv3 and takes no
locks.  The export's folder is also bound at the same path in each node,
as nova's instances path on an NFS mount is on every host: libvirt checks
that path on the destination, and QEMU never uses it (its I/O goes over
NFS).
"""

import os
from xml.sax import saxutils

from migration_tempest_plugin import flags
from migration_tempest_plugin.lab.storage import base
from migration_tempest_plugin import runtime as rt

Outcome = flags.Outcome

NFS_ADDRESS = base.SERVER_ADDRESS   # in the storage sandbox
NFS_PORT = 2049
MOUNTD_PORT = 20048
RPCBIND_KEY = 'rpcbind'
GANESHA_KEY = 'ganesha'


def render_ganesha_conf(address, export, recovery_root):
    """NFSv3 only, over TCP, on the storage sandbox's address; no NLM (no
    locks: the seed's NFS), root not squashed (the lab's QEMU runs as
    root).  ganesha keeps NFSv4 recovery state even so: under the state
    folder, not /var/lib/nfs."""
    return """NFS_CORE_PARAM {
    Protocols = 3;
    Bind_addr = %(address)s;
    NFS_Port = %(nfs_port)d;
    MNT_Port = %(mnt_port)d;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    mount_path_pseudo = false;
}
NFSv4 {
    Graceless = true;
    RecoveryBackend = fs;
    RecoveryRoot = %(recovery)s;
}
EXPORT {
    Export_Id = 1;
    Path = %(export)s;
    Pseudo = /export;
    Protocols = 3;
    Transports = TCP;
    Access_Type = RW;
    Squash = No_Root_Squash;
    SecType = sys;
    Disable_ACL = true;
    FSAL { Name = VFS; }
}
""" % {'address': address, 'nfs_port': NFS_PORT, 'mnt_port': MOUNTD_PORT,
       'recovery': recovery_root, 'export': export}


def export_dir(lab):
    return base.state_dir(lab, 'nfs')


def ganesha_dir(lab):
    return os.path.join(lab.state_dir, 'gluster', 'ganesha')


def ganesha_conf(lab):
    return os.path.join(ganesha_dir(lab), 'ganesha.conf')


class Nfs(base.StorageMode):
    name = 'nfs'
    packages = {'ganesha.nfsd': 'nfs-ganesha', 'rpcbind': 'rpcbind',
                'rpcinfo': 'rpcbind',
                '/usr/lib/x86_64-linux-gnu/qemu/block-nfs.so':
                'qemu-block-extra',
                '/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so':
                'nfs-ganesha-vfs'}
    served = True
    status_key = 'nfs'

    def host_base(self, lab, node):
        return export_dir(lab)

    def url(self, relpath):
        """QEMU's URL of a file of this mode (NFSv3 mounts the export's
        real path)."""
        return 'nfs://%s%s' % (NFS_ADDRESS, os.path.join(
            self.path, base.relative_path(self.name, relpath)))

    def qemu_name(self, relpath):
        return self.url(relpath)

    def disk_source(self, path):
        # libvirt 9.0's schema wants <identity> on an nfs source.
        q = saxutils.quoteattr
        return 'network', (
            "<source protocol='nfs' name=%s><host name=%s/>"
            "<identity user='root' group='root'/></source>"
            % (q(path), q(NFS_ADDRESS)))

    def node_binds(self, lab, node):
        os.makedirs(export_dir(lab), exist_ok=True)
        return [(export_dir(lab), self.path)]

    def server_binds(self, lab, sandbox):
        for sub in ('run/ganesha', 'ganesha/recovery'):
            os.makedirs(os.path.join(sandbox.dir, sub), exist_ok=True)
        os.makedirs(os.path.join(sandbox.dir, 'srv', os.path.relpath(
            self.path, base.MOUNT_BASE)), exist_ok=True)
        os.makedirs(export_dir(lab), exist_ok=True)
        return [(export_dir(lab), self.path)]

    # -- up -----------------------------------------------------------------

    def _rpc_answers(self, lab, program):
        """rpcinfo's null call to an RPC program (v3, TCP) on the server."""
        return lab.gluster.run(
            ['rpcinfo', '-T', 'tcp', NFS_ADDRESS, program, '3'],
            check=False, timeout=15).returncode == 0

    def up(self, lab, say):
        gl = lab.gluster
        os.makedirs(export_dir(lab), exist_ok=True)
        if not lab.procs.pid(RPCBIND_KEY):
            say('rpcbind at %s' % gl.address)
            # ganesha registers with the portmapper, and QEMU's libnfs finds
            # mountd and nfsd only through it.
            gl.spawn(RPCBIND_KEY, ['rpcbind', '-f', '-w'],
                     os.path.join(lab.log_dir, 'rpcbind.out'))
            rt.wait_for('rpcbind to answer', lambda: gl.run(
                ['rpcinfo', '-p', NFS_ADDRESS], check=False,
                timeout=15).returncode == 0, 30, interval=0.2)
        if lab.procs.pid(GANESHA_KEY) and self._rpc_answers(lab, 'nfs'):
            return
        say('nfs-ganesha (NFSv3) at %s, export %s' % (gl.address, self.path))
        recovery = os.path.join(ganesha_dir(lab), 'recovery')
        os.makedirs(recovery, exist_ok=True)
        rt.write_file(ganesha_conf(lab), render_ganesha_conf(
            NFS_ADDRESS, self.path, recovery))
        log = os.path.join(ganesha_dir(lab), 'ganesha.log')
        gl.spawn(GANESHA_KEY, ['ganesha.nfsd', '-F', '-L', log,
                               '-f', ganesha_conf(lab),
                               '-p', '/run/ganesha/ganesha.pid'],
                 os.path.join(lab.log_dir, 'ganesha.out'))

        def alive():
            if not lab.procs.pid(GANESHA_KEY):
                raise rt.LabError('nfs-ganesha did not start: %s' % (
                    rt.one_line(rt.tail(log, 12), 600)))
        rt.wait_for('nfs-ganesha to answer (nfs and mountd)',
                    lambda: self._rpc_answers(lab, 'nfs')
                    and self._rpc_answers(lab, 'mountd'), 60, alive,
                    interval=0.3)

    # -- status -------------------------------------------------------------

    def node_status(self, lab, node, mounts):
        # QEMU reaches the disks over NFS; the bind only serves libvirt's
        # path checks.
        bound = node.mount_type(self.path, mounts)
        return 'nfs3 (libnfs)' if bound and lab.procs.pid(GANESHA_KEY) \
            else None

    def status(self, lab):
        ganesha = lab.procs.pid(GANESHA_KEY)
        return {'address': NFS_ADDRESS,
                'rpcbind_pid': lab.procs.pid(RPCBIND_KEY),
                'ganesha_pid': ganesha,
                'answers': bool(ganesha and lab.gluster.ready()
                                and self._rpc_answers(lab, 'nfs'))}

    def status_ok(self, status):
        return status['answers']

    # -- rules --------------------------------------------------------------

    def expect(self, value):
        # The disk is a libvirt network disk (protocol nfs).
        if base.copies(value):
            # qemuMigrationAnyCopyDisk() copies a network disk like any
            # other; qemuMigrationDstPrepareStorage() skips pre-creating a
            # path that exists on the destination, whose NBD server then
            # exports the same NFS file: the mirror writes onto the disk it
            # reads, and NFSv3 through libnfs takes no lock to stop it.
            return base.expectation(
                Outcome.DATA_AT_RISK, 'disk copied over itself over NFSv3, '
                'no lock to stop it (bug #1499041)')
        # qemuMigrationSrcIsSafe(): "network disks are safe".
        return base.expectation(
            Outcome.INTACT, 'a network disk is shared storage to libvirt; '
            'nothing is copied')


MODE = Nfs
