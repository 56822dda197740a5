"""Certificates for QEMU's native TLS migration (VIR_MIGRATE_TLS).

One lab CA; per node a server certificate (for the incoming migration,
named after the node's address, which is what libvirt hands QEMU as the
TLS host name) and a client certificate (for the outgoing one, since
``migrate_tls_x509_verify = 1`` makes the destination ask for it).  Each
node's folder then holds the file names QEMU looks for::

    ca-cert.pem server-cert.pem server-key.pem client-cert.pem client-key.pem

Made with openssl; QEMU's own checks (CA basic constraints, key usage
digitalSignature + keyEncipherment, extended key usage serverAuth or
clientAuth) are met by the extensions below.
"""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile

from migration_tempest_plugin import errors

DAYS = 3650
KEY_BITS = 2048
NODE_FILES = ('ca-cert.pem', 'server-cert.pem', 'server-key.pem',
              'client-cert.pem', 'client-key.pem')
_META = '.lab-tls.json'


class TLSError(errors.Error):
    pass


def render_openssl_config(kind, common_name, address=None, dns_name=None):
    """An openssl config with the [req] section and the extensions of a
    `ca`, `server` or `client` certificate."""
    if kind not in ('ca', 'server', 'client'):
        raise ValueError(kind)
    lines = [
        '[req]',
        'distinguished_name = dn',
        'prompt = no',
        '[dn]',
        'O = migration-lab',
        'CN = %s' % common_name,
        '[ext]',
    ]
    if kind == 'ca':
        lines += ['basicConstraints = critical, CA:TRUE',
                  'keyUsage = critical, keyCertSign, cRLSign',
                  'subjectKeyIdentifier = hash']
    else:
        lines += ['basicConstraints = critical, CA:FALSE',
                  'keyUsage = critical, digitalSignature, keyEncipherment',
                  'extendedKeyUsage = %s' % (
                      'serverAuth' if kind == 'server' else 'clientAuth'),
                  'subjectKeyIdentifier = hash',
                  'authorityKeyIdentifier = keyid']
        alt = []
        if address:
            alt.append('IP:%s' % address)
        if dns_name:
            alt.append('DNS:%s' % dns_name)
        if alt:
            lines.append('subjectAltName = %s' % ', '.join(alt))
    return '\n'.join(lines) + '\n'


def _openssl(args, cwd):
    res = subprocess.run(['openssl'] + args, cwd=cwd, capture_output=True,
                         text=True, stdin=subprocess.DEVNULL)
    if res.returncode:
        raise TLSError('openssl %s failed: %s' % (
            args[0], ' '.join(res.stderr.split())[-400:]))
    return res


def _new_key(path, cwd):
    _openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt',
              'rsa_keygen_bits:%d' % KEY_BITS, '-out', path], cwd)
    os.chmod(path, 0o600)


def _write(path, text):
    with open(path, 'w') as f:
        f.write(text)


def ensure_ca(folder):
    """The lab CA in `folder` (made once); returns (cert path, key path)."""
    os.makedirs(folder, exist_ok=True)
    cert = os.path.join(folder, 'ca-cert.pem')
    key = os.path.join(folder, 'ca-key.pem')
    if os.path.exists(cert) and os.path.exists(key):
        return cert, key
    cfg = os.path.join(folder, 'ca.cnf')
    _write(cfg, render_openssl_config('ca', 'migration-lab CA'))
    _new_key(key, folder)
    _openssl(['req', '-new', '-x509', '-config', cfg, '-extensions', 'ext',
              '-key', key, '-sha256', '-days', str(DAYS),
              '-out', cert + '.tmp'],
             folder)
    os.replace(cert + '.tmp', cert)
    return cert, key


def _issue(kind, name, address, ca_cert, ca_key, out_cert, out_key, work):
    cfg = os.path.join(work, '%s-%s.cnf' % (name, kind))
    csr = os.path.join(work, '%s-%s.csr' % (name, kind))
    cn = address if kind == 'server' else '%s client' % name
    _write(cfg, render_openssl_config(kind, cn, address, 'lab-' + name))
    _new_key(out_key, work)
    _openssl(['req', '-new', '-config', cfg, '-key', out_key, '-out', csr],
             work)
    _openssl(['x509', '-req', '-in', csr, '-CA', ca_cert, '-CAkey', ca_key,
              '-set_serial', '0x' + os.urandom(8).hex(), '-sha256',
              '-days', str(DAYS), '-extfile', cfg, '-extensions', 'ext',
              '-out', out_cert], work)


def _fingerprint(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def node_is_current(dest, address, ca_fingerprint):
    try:
        with open(os.path.join(dest, _META)) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return False
    return (meta == {'address': address, 'ca': ca_fingerprint}
            and all(os.path.exists(os.path.join(dest, n))
                    for n in NODE_FILES))


def ensure_certificates(folder, nodes):
    """Make the CA (in `folder`) and, for each (name, address, dest) in
    `nodes`, the node's certificates in `dest`, unless they are already
    there for this CA and address."""
    ca_cert, ca_key = ensure_ca(folder)
    ca_fp = _fingerprint(ca_cert)
    for name, address, dest in nodes:
        if node_is_current(dest, address, ca_fp):
            continue
        os.makedirs(dest, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as work:
            for kind in ('server', 'client'):
                _issue(kind, name, address, ca_cert, ca_key,
                       os.path.join(work, '%s-cert.pem' % kind),
                       os.path.join(work, '%s-key.pem' % kind), work)
            shutil.copy(ca_cert, os.path.join(work, 'ca-cert.pem'))
            for fname in NODE_FILES:
                shutil.copy2(os.path.join(work, fname),
                             os.path.join(dest, fname))
        _write(os.path.join(dest, _META),
               json.dumps({'address': address, 'ca': ca_fp}))
