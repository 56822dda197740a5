"""SSH between the lab cloud's computes, as devstack multinode sets it up.

nova's cold migration and resize reach the other compute over SSH (a probe
file for shared storage, then ``scp`` of the disks on local storage), and
the tempest tests reach the computes as Zuul reaches devstack subnodes
(``[migration] host_access = ssh``).  So each lab node runs an sshd on its
own lab address only, started and stopped with the cloud, and:

* root, the user nova-compute runs as in the lab, has a key and known hosts
  for both nodes.  They live in a home folder under the state folder, which
  each node's /etc/passwd names (a copy bound over the file inside the
  node's own mount namespace, like the node's /etc/hosts), so nothing is
  written to the host's /root/.ssh;
* the tests have a key of their own, which both sshds accept for root.

Layout under <cloud>/ssh/::

    root-home/.ssh/   id_ed25519(.pub), known_hosts, config   (nova's)
    tempest_key       the tests' key (the .pub beside it)
    authorized_keys   both public keys
    passwd            /etc/passwd as the nodes see it
    NODE/             host key and sshd_config of one node
"""

import os

from migration_tempest_plugin.cloud import base
from migration_tempest_plugin import runtime as rt

SSHD = '/usr/sbin/sshd'
PORT = 22
KEY_TYPE = 'ed25519'


def folder(cloud, *parts):
    return cloud.path('ssh', *parts)


def home(cloud):
    return folder(cloud, 'root-home')


def tempest_key(cloud):
    return folder(cloud, 'tempest_key')


def service_key(compute):
    return 'sshd-' + compute.name


def _keygen(cloud, path, comment):
    if os.path.exists(path) and os.path.exists(path + '.pub'):
        return
    for stale in (path, path + '.pub'):
        if os.path.exists(stale):
            os.unlink(stale)
    cloud.run(['ssh-keygen', '-q', '-t', KEY_TYPE, '-N', '', '-C', comment,
               '-f', path], 'ssh-keygen ' + os.path.basename(path))


def _public(path):
    with open(path + '.pub') as f:
        return f.read().strip()


def sshd_config(address, host_key, authorized_keys):
    """sshd_config of one node: root by key only, on the node's address."""
    return '\n'.join([
        '# Written by migration_tempest_plugin.cloud.ssh on every cloud up.',
        'ListenAddress %s:%d' % (address, PORT),
        'HostKey %s' % host_key,
        'PidFile none',
        'AuthorizedKeysFile %s' % authorized_keys,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        # No PAM stack or login records inside a lab node; the key files
        # sit in the state folder, whose owners sshd need not vet.
        'UsePAM no',
        'StrictModes no',
        'PrintMotd no',
        # nova copies disks with scp, which speaks SFTP since OpenSSH 9.0.
        'Subsystem sftp internal-sftp',
        '',
    ])


def client_config(key):
    return '\n'.join([
        '# The lab nodes only; written by migration_tempest_plugin.cloud.ssh',
        'Host 10.254.0.*',
        '    IdentityFile %s' % key,
        '    StrictHostKeyChecking yes',
        '    BatchMode yes',
        '',
    ])


def passwd_text(host_passwd, root_home):
    """/etc/passwd with root's home folder replaced."""
    out = []
    for line in host_passwd.splitlines():
        fields = line.split(':')
        if len(fields) == 7 and fields[0] == 'root':
            fields[5] = root_home
            line = ':'.join(fields)
        out.append(line)
    return '\n'.join(out) + '\n'


def configure(cloud, s):
    """Keys, host keys, known hosts and every sshd_config (idempotent)."""
    dot_ssh = os.path.join(home(cloud), '.ssh')
    os.makedirs(dot_ssh, mode=0o700, exist_ok=True)
    nova_key = os.path.join(dot_ssh, 'id_' + KEY_TYPE)
    _keygen(cloud, nova_key, 'nova@lab-cloud')
    _keygen(cloud, tempest_key(cloud), 'tempest@lab-cloud')
    rt.write_file(folder(cloud, 'authorized_keys'), '%s\n%s\n' % (
        _public(nova_key), _public(tempest_key(cloud))), 0o600)
    known = []
    for compute, node in cloud.compute_nodes():
        os.makedirs(folder(cloud, compute.name), exist_ok=True)
        host_key = folder(cloud, compute.name, 'ssh_host_%s_key' % KEY_TYPE)
        _keygen(cloud, host_key, 'root@' + compute.name)
        key_type, blob = _public(host_key).split()[:2]
        known.append('%s,%s %s %s' % (compute.address, compute.name,
                                      key_type, blob))
        rt.write_file(folder(cloud, compute.name, 'sshd_config'),
                      sshd_config(compute.address, host_key,
                                  folder(cloud, 'authorized_keys')))
    rt.write_file(folder(cloud, 'known_hosts'), '\n'.join(known) + '\n')
    rt.write_file(os.path.join(dot_ssh, 'known_hosts'),
                  '\n'.join(known) + '\n', 0o600)
    rt.write_file(os.path.join(dot_ssh, 'config'), client_config(nova_key),
                  0o600)
    with open('/etc/passwd') as f:
        rt.write_file(folder(cloud, 'passwd'),
                      passwd_text(f.read(), home(cloud)))


def _bind_passwd(cloud, node):
    wanted = folder(cloud, 'passwd')
    with open(wanted) as f:
        text = f.read()
    if node.run(['cat', '/etc/passwd']).stdout != text:
        node.run(['mount', '--bind', wanted, '/etc/passwd'])


def start(cloud, s, restart=False):
    """An sshd in each node (on its own address), root's home as ours."""
    for compute, node in cloud.compute_nodes():
        _bind_passwd(cloud, node)
        # sshd's privilege separation folder, in the node's own /run.
        node.run(['mkdir', '-p', '-m', '0755', '/run/sshd'])
        key = service_key(compute)
        if restart:
            cloud.sup.stop(key)
        cloud.sup.start(key, node.argv([
            SSHD, '-D', '-e', '-f',
            folder(cloud, compute.name, 'sshd_config')]))


def wait(cloud, s, timeout=30):
    for compute, _node in cloud.compute_nodes():
        key = service_key(compute)
        cloud.sup.wait(key, 'answered on %s:%d' % (compute.address, PORT),
                       lambda a=compute.address: base.tcp_answers(a, PORT),
                       timeout)


def check_between_nodes(cloud):
    """What nova does first on a resize: from each node, run a command on
    the other one as root, with strict host key checking."""
    pairs = cloud.compute_nodes()
    for compute, node in pairs:
        for other, _n in pairs:
            if other is compute:
                continue
            res = node.run(['ssh', '-o', 'BatchMode=yes', other.address,
                            'true'], check=False, timeout=60)
            if res.returncode:
                raise base.CloudError(
                    'ssh from %s to %s fails: %s' % (
                        compute.name, other.name, rt.one_line(res.stderr)))


def stop(cloud):
    return cloud.stop_services([n for n in cloud.sup.names()
                                if n.startswith('sshd-')])


def cleanup(cloud, node):
    """With the lab kept: give the node its /etc/passwd back."""
    node.run(['umount', '/etc/passwd'], check=False)
