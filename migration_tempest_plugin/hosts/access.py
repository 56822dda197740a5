"""Reaching compute hosts from the tempest tests.

Two ways, one interface: SSH to devstack compute hosts (as
whitebox-tempest-plugin does), or the embedded lab's nodes on this machine.
What the tests need from a host is small: run a command, read a file (the
libvirtd log, a guest's console log) from a given offset, read back an
instance's disk as the guest sees it, see whether an instance left anything
behind, change nova-compute's nova.conf and restart it, and, for the fault
tests, stop and start nova-compute and libvirtd or kill one guest's QEMU.

Every command runs as root on the host.
"""

import base64
import contextlib
import dataclasses
import io
import logging
import mmap
import os
import shlex
import socket
import subprocess
import tempfile
import zlib

import yaml

from migration_tempest_plugin import common
from migration_tempest_plugin import errors

LOG = logging.getLogger(__name__)

# Where libvirt's QEMU driver keeps each running domain's pid file.
QEMU_PID_DIR = '/run/libvirt/qemu'
# The shell commands a compute-hosts entry may give, each run as root on
# its host, by the method that runs it.
SERVICE_COMMANDS = {
    'stop_nova_compute': 'compute_stop_command',
    'start_nova_compute': 'compute_start_command',
    'stop_libvirt': 'libvirt_stop_command',
    'start_libvirt': 'libvirt_start_command',
}
# Bytes per read of a streamed command output (a disk image).
CHUNK = 1 << 20


class HostAccessError(errors.Error):
    pass


# Where a disk lives, as a compute host reads it back (ComputeHost.image).

@dataclasses.dataclass(frozen=True)
class FileImage:
    """An image file in any format qemu-img reads (nova's qcow2 or raw
    instance disks under the instances path)."""
    path: str

    def qemu_spec(self):
        return self.path


@dataclasses.dataclass(frozen=True)
class RbdImage:
    """A Ceph RBD image (nova's instance disks with images_type = rbd:
    <images_rbd_pool>/<uuid>_disk; cinder's RBD volumes:
    <rbd_pool>/volume-<id>), read with the cephx `user` whose keyring the
    host's ceph `conf` finds."""
    pool: str
    image: str
    user: str = 'admin'
    conf: str = '/etc/ceph/ceph.conf'

    @property
    def spec(self):
        return '%s/%s' % (self.pool, self.image)

    def qemu_spec(self):
        return 'rbd:%s:id=%s:conf=%s' % (self.spec, self.user, self.conf)


@dataclasses.dataclass(frozen=True)
class BlockDevice:
    """A block device on the host (a cinder LVM volume's logical volume on
    its volume host)."""
    path: str

    def qemu_spec(self):
        return self.path


class GunzipWriter(object):
    """A binary file-like sink that gunzips what is written to it into
    `out`, a bounded piece at a time: the integrity guest's disk is made of
    a few repeated records, and a chunk of its gzip stream can inflate a
    thousandfold."""

    def __init__(self, out, piece=CHUNK):
        self.out = out
        self.piece = piece
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def write(self, data):
        if self._z.eof and data:
            raise HostAccessError('data after the end of the gzip stream')
        while data:
            try:
                self.out.write(self._z.decompress(data, self.piece))
            except zlib.error as exc:
                raise HostAccessError('corrupt gzip stream: %s' % exc)
            data = self._z.unconsumed_tail
            if self._z.eof and (data or self._z.unused_data):
                raise HostAccessError('data after the end of the gzip '
                                      'stream')

    def close(self):
        """Flush; raise if the stream ended before gzip's trailer."""
        self.out.write(self._z.flush())
        if not self._z.eof:
            raise HostAccessError('the gzip stream was cut short')


class ComputeHost(object):
    """One compute host; subclasses say how commands reach it."""

    # Whether disk images cross the link gzipped (SSH) or as they are.
    gzip_disk_stream = False

    def __init__(self, name, instances_path, libvirtd_log_path,
                 nova_conf=None, commands=None, qemu_pid_dir=QEMU_PID_DIR,
                 rbd=None):
        self.name = name
        # The compute hosts file's rbd_user, rbd_ceph_conf and rbd_pool of
        # this host, as {'user', 'conf', 'pool'}, where it gives them
        # (otherwise the tests use [migration]'s).
        self.rbd = {k: v for k, v in (rbd or {}).items() if v}
        self.instances_path = instances_path
        self.libvirtd_log_path = libvirtd_log_path
        self.nova_conf = nova_conf
        # {compute-hosts key: shell command} (SERVICE_COMMANDS).
        self.commands = {k: v for k, v in (commands or {}).items() if v}
        self.qemu_pid_dir = qemu_pid_dir

    # -- commands -------------------------------------------------------------

    def execute(self, argv):
        """Run argv (a list) on the host as root; return its stdout."""
        raise NotImplementedError

    def stream(self, argv, out):
        """Run argv on the host as root and write its stdout, as it comes,
        to `out` (a binary file-like object)."""
        raise NotImplementedError

    def _shell(self, script):
        return self.execute(['sh', '-c', script])

    def _run_configured(self, method):
        key = SERVICE_COMMANDS[method]
        if key not in self.commands:
            raise HostAccessError('no %s for compute host %s in [migration] '
                                  'compute_hosts_file' % (key, self.name))
        self._shell(self.commands[key])

    def stop_nova_compute(self):
        self._run_configured('stop_nova_compute')

    def start_nova_compute(self):
        self._run_configured('start_nova_compute')

    def stop_libvirt(self):
        self._run_configured('stop_libvirt')

    def start_libvirt(self):
        self._run_configured('start_libvirt')

    def restart_nova_compute(self):
        raise NotImplementedError

    # -- files ----------------------------------------------------------------

    def read_text(self, path):
        return self.execute(['cat', path])

    def write_text(self, path, text):
        """Replace the file at `path` with `text`, atomically."""
        self._shell(write_script(path, text))

    def has_file(self, path):
        out = self._shell('test -e %s && echo yes || echo no'
                          % shlex.quote(path))
        return out.strip() == 'yes'

    def file_size(self, path):
        """The size of the file at `path` in bytes, or None when there is
        none."""
        return parse_size(self._shell(
            'if test -e {p}; then stat -L -c %s {p}; fi'.format(
                p=shlex.quote(path))), path)

    def read_from(self, path, offset):
        """The bytes of the file at `path` from byte `offset` on."""
        out = io.BytesIO()
        self.stream(['tail', '-c', '+%d' % (int(offset) + 1), path], out)
        return out.getvalue()

    def keep_original(self, path, original):
        """Copy `path` to `original` unless `original` exists already (then
        it is a copy that was never restored, and it stays as it is)."""
        self._shell('set -e; if ! test -e {o}; then cp -p {p} {t}; '
                    'mv -f {t} {o}; fi'.format(
                        p=shlex.quote(path), o=shlex.quote(original),
                        t=shlex.quote(original + '.tmp')))

    def restore_original(self, path, original):
        """Put `original` back at `path` (a rename: atomic, with the
        original's mode and owner); return False when there was none."""
        out = self._shell('if test -e {o}; then mv -f {o} {p} && echo yes; '
                          'else echo no; fi'.format(
                              p=shlex.quote(path), o=shlex.quote(original)))
        return out.strip() == 'yes'

    # -- the libvirtd log -----------------------------------------------------

    def libvirtd_log_size(self):
        """The libvirtd log's size now (0 when there is none yet): the
        offset from which a later libvirtd_log_since() reads."""
        return self.file_size(self.libvirtd_log_path) or 0

    def libvirtd_log_since(self, offset):
        """The libvirtd log from byte `offset` on, as text; all of it when
        it is shorter than `offset` (rotated or truncated since)."""
        size = self.file_size(self.libvirtd_log_path)
        if size is None:
            return ''
        if size < offset:
            LOG.warning('libvirtd log %s on %s shrank from %d to %d bytes '
                        '(rotated?): reading it all', self.libvirtd_log_path,
                        self.name, offset, size)
            offset = 0
        return self.read_from(self.libvirtd_log_path, offset).decode(
            'utf-8', 'replace')

    def libvirtd_log(self):
        """The whole libvirtd log (for people; the tests read from an
        offset)."""
        return self.libvirtd_log_since(0)

    # -- instances ------------------------------------------------------------

    def instance_dir(self, instance_uuid):
        return os.path.join(self.instances_path, instance_uuid)

    def instance_disk(self, instance_uuid):
        return os.path.join(self.instance_dir(instance_uuid), 'disk')

    def console_log(self, instance_uuid):
        """Path of the guest's serial console log that nova's libvirt
        driver has virtlogd write."""
        return os.path.join(self.instance_dir(instance_uuid), 'console.log')

    def has_instance_dir(self, instance_uuid):
        return self.has_file(self.instance_dir(instance_uuid))

    def domain_state(self, instance_uuid):
        """libvirt's state of the instance's domain on this host
        ('running', 'paused', 'shut off', ...), or None when it has none."""
        out = self._shell(domstate_script(instance_uuid)).strip()
        return out[len('state:'):].strip() if out.startswith('state:') \
            else None

    def libvirt_answers(self):
        """True while the libvirt daemon on this host answers."""
        return self._shell('virsh -c qemu:///system uri >/dev/null 2>&1 '
                           '&& echo yes || echo no').strip() == 'yes'

    def has_domain(self, instance_uuid):
        """True when this host's libvirt knows the instance's domain."""
        return self.domain_state(instance_uuid) is not None

    def domain_xml(self, instance_uuid):
        """The live XML of the instance's domain on this host."""
        return self.execute(['virsh', '-c', 'qemu:///system', 'dumpxml',
                             instance_uuid])

    def kill_guest(self, instance_uuid, domain_name=None):
        """kill -9 the QEMU of this instance: the pid in libvirt's pid file
        of its domain (named by `virsh domname` unless given), once the
        process's command line is seen to name the instance's uuid."""
        self._shell(kill_script(instance_uuid, domain_name,
                                self.qemu_pid_dir))

    def instance_image(self, instance_uuid, name='disk'):
        """The instance's disk `name` under the instances path."""
        return FileImage(os.path.join(self.instance_dir(instance_uuid),
                                      name))

    def disk_image(self, instance_uuid, name='disk', length=None):
        """image() of the instance's disk `name` (its root disk, or e.g.
        disk.eph0) under the instances path."""
        return self.image(self.instance_image(instance_uuid, name), length)

    def image_exists(self, source):
        """Whether the image `source` (a FileImage, RbdImage or
        BlockDevice) exists on, or is reachable from, this host."""
        out = self._shell(exists_script(source)).strip()
        return out == 'yes'

    def image_virtual_size(self, source):
        """The virtual size of image `source` in bytes (qemu-img info)."""
        import json
        out = self.execute(['qemu-img', 'info', '-U', '--output', 'json',
                            source.qemu_spec()])
        return json.loads(out)['virtual-size']

    @contextlib.contextmanager
    def image(self, source, length=None):
        """The content of the image `source` as the guest sees it (raw),
        its first `length` bytes when given, as a read-only mmap of a
        local temporary file that is gone once the block exits.  It
        streams from the host into that file: never a whole image in
        memory, here or there.

        The server must be paused or stopped first: a disk read while the
        guest writes is not a state the guest ever saw.
        """
        with tempfile.TemporaryFile(prefix='mtp-disk-') as f:
            sink = GunzipWriter(f) if self.gzip_disk_stream else f
            self.stream(['bash', '-c', read_script(
                source, self.gzip_disk_stream, length)], sink)
            if self.gzip_disk_stream:
                sink.close()
            f.flush()
            if not f.tell():
                # mmap cannot map an empty file; the checker calls an empty
                # image an image that ends at byte 0.
                yield b''
                return
            image = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            try:
                yield image
            finally:
                _close_mapping(image)


def _close_mapping(image):
    try:
        image.close()
    except BufferError:
        # A view of it is still alive (in a traceback being raised): the
        # mapping goes with that view, and the file, already unlinked, with
        # the mapping.
        LOG.debug('disk image mapping still viewed; left to the collector')


def parse_size(out, path):
    text = out.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise HostAccessError('size of %s: %r' % (path, text))


def write_script(path, text):
    """sh that replaces `path` with `text` atomically (keeping its mode)."""
    encoded = base64.b64encode(text.encode()).decode()
    return ('set -e; echo {data} | base64 -d > {tmp}; '
            'chmod --reference={path} {tmp} 2>/dev/null || true; '
            'mv -f {tmp} {path}').format(
                data=encoded, path=shlex.quote(path),
                tmp=shlex.quote(path + '.mtp-tmp'))


def disk_script(disk, gzipped, length=None):
    """sh that writes the raw content of image `disk` to stdout (its first
    `length` bytes when given: the part the oracle's layout covers, so that
    a 1 GiB root disk does not cross the wire for its 64 MiB of blocks).

    Read as a cache=none QEMU does (O_DIRECT), past the host's page cache:
    on shared storage it may hold stale pages of a file another host wrote
    (seen with GlusterFS in the lab); a filesystem without O_DIRECT (nova
    then uses writethrough) is read through the cache.  -U reads past the
    image lock of a paused QEMU, whose I/O is drained.  qemu-img cannot
    write raw to a pipe, so the image goes through a temporary file on the
    host, removed however the script ends.
    """
    return ('set -e; tmp=$(mktemp /var/tmp/mtp-disk.XXXXXX); '
            'trap \'rm -f "$tmp"\' EXIT; '
            'qemu-img convert -U -T none -O raw {disk} "$tmp" 2>/dev/null '
            '|| qemu-img convert -U -O raw {disk} "$tmp"; '
            '{head}{send}').format(
                disk=shlex.quote(disk),
                head=('head -c %d "$tmp" | ' % length) if length else '',
                send=('gzip -1 -c' if gzipped else 'cat') + (
                    '' if length else ' "$tmp"'))


def _piped(producer, gzipped, length=None, cut_status=(141,)):
    """bash that runs `producer` (which writes an image to stdout) into
    stdout, cut to `length` bytes and gzipped when asked.  A producer that
    head stops early ends with one of `cut_status` (141: killed by
    SIGPIPE; rbd ignores SIGPIPE and exits 32, EPIPE): with a length that
    is the cut, not a failure.  Any other failure of a stage fails the
    script."""
    stages = [producer]
    if length:
        stages.append('head -c %d' % int(length))
    if gzipped:
        stages.append('gzip -1 -c')
    accepted = ' '.join(str(c) for c in cut_status) if length else ''
    return ('{pipe}; st=("${{PIPESTATUS[@]}}"); '
            'for rc in "${{st[@]:1}}"; do [ "$rc" -eq 0 ] || exit "$rc"; '
            'done; case " 0 {ok} " in *" ${{st[0]}} "*) ;; '
            '*) exit "${{st[0]}}";; esac').format(
                pipe=' | '.join(stages), ok=accepted)


def rbd_args(source):
    return '--id {user} --conf {conf}'.format(
        user=shlex.quote(source.user), conf=shlex.quote(source.conf))


def read_script(source, gzipped, length=None):
    """bash that writes the raw content of `source` (FileImage, RbdImage or
    BlockDevice) to stdout, its first `length` bytes when given.

    An image file goes through qemu-img (disk_script: it may be qcow2).
    An RBD image is streamed by `rbd export` to stdout (raw, as nova and
    cinder store them), never through a temporary file; the image is
    looked up first, so a missing one is an error rather than an empty
    stream.  A block device is read with O_DIRECT, past the host's page
    cache.
    """
    if isinstance(source, FileImage):
        return disk_script(source.path, gzipped, length)
    if isinstance(source, RbdImage):
        rbd = 'rbd %s' % rbd_args(source)
        return ('set -e; {rbd} info {spec} >/dev/null; {pipe}').format(
            rbd=rbd, spec=shlex.quote(source.spec),
            pipe=_piped('%s export --no-progress %s -' % (
                rbd, shlex.quote(source.spec)), gzipped, length,
                cut_status=(141, 32)))
    if isinstance(source, BlockDevice):
        return ('set -e; test -b {p} || {{ echo "{p}: no block device" >&2; '
                'exit 1; }}; {pipe}').format(
                    p=shlex.quote(source.path),
                    pipe=_piped('dd if=%s bs=1M iflag=direct status=none'
                                % shlex.quote(source.path), gzipped, length))
    raise HostAccessError('cannot read back %r' % (source,))


def exists_script(source):
    """sh that prints "yes" when `source` exists on the host, else "no";
    it fails when it cannot tell (the Ceph cluster not answering)."""
    if isinstance(source, RbdImage):
        # rbd info exits 2 (ENOENT) for a missing image.
        return ('out=$(rbd {args} info {spec} 2>&1) && {{ echo yes; exit 0; '
                '}}; case "$out" in *"No such file"*|*"error opening image"*'
                ') echo no;; *) echo "$out" >&2; exit 1;; esac').format(
                    args=rbd_args(source), spec=shlex.quote(source.spec))
    flag = '-b' if isinstance(source, BlockDevice) else '-e'
    return 'test {f} {p} && echo yes || echo no'.format(
        f=flag, p=shlex.quote(source.path))


def domain_disks(xml, rbd_user='admin', ceph_conf='/etc/ceph/ceph.conf'):
    """{target dev: image source} of the disks in a libvirt domain XML:
    FileImage for type='file', BlockDevice for type='block', RbdImage for
    a network disk with protocol='rbd' (read with `rbd_user` and
    `ceph_conf`, not the secret libvirt was given); other disks (a cdrom
    without media, another protocol) are left out.  What the guest's
    domain really uses, whatever nova's database says."""
    from xml.etree import ElementTree
    found = {}
    for disk in ElementTree.fromstring(xml).iter('disk'):
        target = disk.find('target')
        source = disk.find('source')
        if target is None or source is None:
            continue
        dev = target.get('dev')
        kind = disk.get('type')
        if kind == 'file' and source.get('file'):
            found[dev] = FileImage(source.get('file'))
        elif kind == 'block' and source.get('dev'):
            found[dev] = BlockDevice(source.get('dev'))
        elif kind == 'network' and source.get('protocol') == 'rbd' and \
                '/' in (source.get('name') or ''):
            pool, _, image = source.get('name').partition('/')
            found[dev] = RbdImage(pool, image, rbd_user, ceph_conf)
    return found


def domstate_script(instance_uuid):
    """sh that prints "state:<state>" of the instance's domain, or "none"
    when libvirt has no such domain, and fails when virsh does otherwise
    (libvirtd down is not "no domain")."""
    return ('out=$(virsh -c qemu:///system domstate {uuid} 2>&1) && '
            '{{ echo "state:$out"; exit 0; }}; '
            'case "$out" in *"failed to get domain"*|*"omain not found"*) '
            'echo none;; *) echo "$out" >&2; exit 1;; esac').format(
                uuid=shlex.quote(instance_uuid))


def kill_script(instance_uuid, domain_name=None, pid_dir=QEMU_PID_DIR):
    """sh that kills -9 the QEMU of one instance, by its pid file, after
    checking that the pid's command line names the instance."""
    name = (shlex.quote(domain_name) if domain_name else
            '$(virsh -c qemu:///system domname %s)'
            % shlex.quote(instance_uuid))
    return (
        'set -eu; name={name}; pidfile={dir}/$name.pid; '
        'pid=$(cat "$pidfile"); '
        'case "$pid" in ""|*[!0-9]*) '
        'echo "no pid in $pidfile" >&2; exit 1;; esac; '
        'if ! tr "\\0" "\\n" < /proc/$pid/cmdline | grep -qF {uuid}; then '
        'echo "process $pid of $pidfile is not the QEMU of {uuid}" >&2; '
        'exit 1; fi; '
        'kill -9 "$pid"').format(name=name, dir=shlex.quote(pid_dir),
                                 uuid=shlex.quote(instance_uuid))


class SSHComputeHost(ComputeHost):
    """A devstack compute host reached over SSH, as root or with sudo."""

    gzip_disk_stream = True

    def __init__(self, name, address, user, key_file, restart_command=None,
                 timeout=600, **kwargs):
        super().__init__(name, **kwargs)
        self.address = address
        self.user = user
        self.key_file = key_file
        self.restart_command = restart_command
        self.timeout = timeout

    def command_line(self, argv):
        """The remote command line: argv quoted, through sudo unless the
        SSH user is root (sudo may not even be installed there)."""
        line = ' '.join(shlex.quote(str(a)) for a in argv)
        return line if self.user == 'root' else 'sudo -n ' + line

    def execute(self, argv):
        from tempest.lib.common import ssh
        from tempest.lib import exceptions as lib_exc
        client = ssh.Client(self.address, self.user,
                            key_filename=self.key_file)
        try:
            return client.exec_command(self.command_line(argv))
        except lib_exc.SSHExecCommandFailed as exc:
            raise HostAccessError('%s on %s: %s' % (argv[0], self.name, exc))

    def stream(self, argv, out):
        # tempest's ssh.Client.exec_command holds the whole output in
        # memory: the disk image goes to `out` one chunk at a time instead.
        import paramiko
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        err = bytearray()
        try:
            client.connect(self.address, username=self.user,
                           key_filename=self.key_file, look_for_keys=False,
                           timeout=60)
            with client.get_transport().open_session() as channel:
                channel.settimeout(self.timeout)
                channel.exec_command(self.command_line(argv))
                channel.shutdown_write()
                while True:
                    chunk = channel.recv(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    while channel.recv_stderr_ready():
                        err += channel.recv_stderr(CHUNK)
                while True:
                    chunk = channel.recv_stderr(CHUNK)
                    if not chunk:
                        break
                    err += chunk
                status = channel.recv_exit_status()
        except (paramiko.SSHException, socket.timeout, OSError) as exc:
            raise HostAccessError('%s on %s: %s' % (argv[0], self.name, exc))
        finally:
            client.close()
        if status:
            raise HostAccessError('%s on %s: exit %d: %s' % (
                argv[0], self.name, status,
                bytes(err).decode('utf-8', 'replace').strip()[-300:]))

    def restart_nova_compute(self):
        if not self.restart_command:
            raise HostAccessError('no restart_command for compute host %s '
                                  'in [migration] compute_hosts_file'
                                  % self.name)
        self._shell(self.restart_command)


class LabComputeHost(ComputeHost):
    """A node of the embedded lab cloud, on this machine.

    The compute-hosts file that `migration-lab cloud up` writes says how
    to reach each node: `enter`, the argv prefix that runs a command in the
    node's namespaces; `libvirtd_log`, the node's libvirtd log as a path on
    this machine; `restart`, the lab cloud's restart-compute command.  So
    the plugin needs nothing from the lab's code.
    """

    def __init__(self, name, enter, libvirtd_log_file, restart_argv=None,
                 **kwargs):
        super().__init__(name, **kwargs)
        self.enter = list(enter)
        self.libvirtd_log_file = libvirtd_log_file
        self.restart_argv = restart_argv

    def _env(self):
        return dict(os.environ, PATH=common.SBIN_PATH, LC_ALL='C')

    def _run(self, argv, what):
        try:
            result = subprocess.run(argv, capture_output=True, text=True,
                                    stdin=subprocess.DEVNULL,
                                    env=self._env(), timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HostAccessError('%s on %s: %s' % (what, self.name, exc))
        if result.returncode:
            raise HostAccessError('%s on %s: %s' % (
                what, self.name,
                (result.stderr or result.stdout).strip()[-300:]))
        return result.stdout

    def execute(self, argv):
        return self._run(self.enter + [str(a) for a in argv], argv[0])

    def stream(self, argv, out):
        with tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(
                    self.enter + [str(a) for a in argv],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=err, env=self._env())
            except OSError as exc:
                raise HostAccessError('%s on %s: %s' % (argv[0], self.name,
                                                        exc))
            with proc:
                while True:
                    chunk = proc.stdout.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
            if proc.returncode:
                err.seek(0)
                raise HostAccessError('%s on %s: %s' % (
                    argv[0], self.name,
                    err.read().decode('utf-8', 'replace').strip()[-300:]))

    # The node's libvirtd log is a file on this machine.

    def libvirtd_log_size(self):
        try:
            return os.path.getsize(self.libvirtd_log_file)
        except FileNotFoundError:
            return 0

    def libvirtd_log_since(self, offset):
        try:
            with open(self.libvirtd_log_file, 'rb') as f:
                size = os.fstat(f.fileno()).st_size
                if size < offset:
                    LOG.warning('libvirtd log %s of %s shrank from %d to %d '
                                'bytes (rotated?): reading it all',
                                self.libvirtd_log_file, self.name, offset,
                                size)
                    offset = 0
                f.seek(offset)
                return f.read().decode('utf-8', 'replace')
        except FileNotFoundError:
            return ''

    def restart_nova_compute(self):
        # The lab cloud's own command: it runs here, not inside the node,
        # and returns once the restarted service has reported to nova.
        if not self.restart_argv:
            raise HostAccessError('no restart for compute host %s in '
                                  '[migration] compute_hosts_file'
                                  % self.name)
        self._run(self.restart_argv, 'restarting nova-compute')


def load_hosts(conf):
    """Map of hypervisor hostname -> ComputeHost, from [migration]."""
    opts = conf.migration
    if opts.host_access == 'none':
        return {}
    if not opts.compute_hosts_file:
        raise HostAccessError('[migration] host_access = %s needs '
                              'compute_hosts_file' % opts.host_access)
    with open(opts.compute_hosts_file) as f:
        entries = yaml.safe_load(f) or {}
    hosts = {}
    for name, entry in entries.items():
        common = dict(
            instances_path=entry.get('instances_path',
                                     '/opt/stack/data/nova/instances'),
            libvirtd_log_path=entry.get('libvirtd_log_path',
                                        opts.libvirtd_log_path),
            nova_conf=entry.get('nova_conf'),
            commands={key: entry.get(key)
                      for key in SERVICE_COMMANDS.values()},
            qemu_pid_dir=entry.get('qemu_pid_dir', QEMU_PID_DIR),
            rbd={'user': entry.get('rbd_user'),
                 'conf': entry.get('rbd_ceph_conf'),
                 'pool': entry.get('rbd_pool')})
        if opts.host_access == 'lab':
            try:
                hosts[name] = LabComputeHost(
                    name, entry['enter'], entry['libvirtd_log'],
                    restart_argv=entry.get('restart'), **common)
            except KeyError as exc:
                raise HostAccessError(
                    'compute host %s in %s has no %s' % (
                        name, opts.compute_hosts_file, exc))
        else:
            hosts[name] = SSHComputeHost(
                name, entry.get('address', name),
                entry.get('user', opts.ssh_user),
                entry.get('key_file', opts.ssh_key_file),
                restart_command=entry.get('restart_command'), **common)
    return hosts
