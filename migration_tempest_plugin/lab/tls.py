"""Certificates for QEMU's native TLS migration (VIR_MIGRATE_TLS).

One lab CA; per node a server certificate (for the incoming migration,
named after the node's address, which is what libvirt hands QEMU as the
TLS host name) and a client certificate (for the outgoing one, since
``migrate_tls_x509_verify = 1`` makes the destination ask for it).  Each
node's folder then holds the file names QEMU looks for::

    ca-cert.pem server-cert.pem server-key.pem client-cert.pem client-key.pem

Made with the ``cryptography`` library; QEMU's own checks (CA basic
constraints, key usage digitalSignature + keyEncipherment, extended key
usage serverAuth or clientAuth) are met by the extensions below.
"""

import datetime
import hashlib
import ipaddress
import os

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.oid import NameOID

from migration_tempest_plugin import runtime as rt

DAYS = 3650
KEY_BITS = 2048
NODE_FILES = ('ca-cert.pem', 'server-cert.pem', 'server-key.pem',
              'client-cert.pem', 'client-key.pem')
_META = '.lab-tls.json'


def _name(common_name):
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'migration-lab'),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(ca):
    return x509.KeyUsage(
        digital_signature=not ca, key_encipherment=not ca,
        key_cert_sign=ca, crl_sign=ca, content_commitment=False,
        data_encipherment=False, key_agreement=False, encipher_only=False,
        decipher_only=False)


def build_certificate(kind, common_name, key, issuer_key=None,
                      issuer_name=None, address=None, dns_name=None):
    """A `ca` (self-signed), `server` or `client` certificate for `key`,
    signed by `issuer_key` under `issuer_name` (the CA's)."""
    if kind not in ('ca', 'server', 'client'):
        raise ValueError(kind)
    ca = kind == 'ca'
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(common_name))
               .issuer_name(_name(common_name) if ca else issuer_name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=DAYS))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                              critical=True)
               .add_extension(_key_usage(ca), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                   key.public_key()), critical=False))
    signer = key if ca else issuer_key
    if not ca:
        builder = (builder
                   .add_extension(x509.ExtendedKeyUsage([
                       ExtendedKeyUsageOID.SERVER_AUTH if kind == 'server'
                       else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                   .add_extension(
                       x509.AuthorityKeyIdentifier.from_issuer_public_key(
                           issuer_key.public_key()), critical=False))
        alt = []
        if address:
            alt.append(x509.IPAddress(ipaddress.ip_address(address)))
        if dns_name:
            alt.append(x509.DNSName(dns_name))
        if alt:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(alt), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _new_key():
    return rsa.generate_private_key(public_exponent=65537,
                                    key_size=KEY_BITS)


def _key_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()


def _cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def ensure_ca(folder):
    """The lab CA in `folder` (made once); returns (certificate, key)."""
    cert_path = os.path.join(folder, 'ca-cert.pem')
    key_path = os.path.join(folder, 'ca-key.pem')
    if not (os.path.exists(cert_path) and os.path.exists(key_path)):
        key = _new_key()
        rt.write_file(key_path, _key_pem(key), 0o600)
        rt.write_file(cert_path, _cert_pem(
            build_certificate('ca', 'migration-lab CA', key)))
    with open(cert_path, 'rb') as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(key_path, 'rb') as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    return cert, key


def node_is_current(dest, address, ca_fingerprint):
    return (rt.read_json(os.path.join(dest, _META)) ==
            {'address': address, 'ca': ca_fingerprint}
            and all(os.path.exists(os.path.join(dest, n))
                    for n in NODE_FILES))


def ensure_certificates(folder, nodes):
    """Make the CA (in `folder`) and, for each (name, address, dest) in
    `nodes`, the node's certificates in `dest`, unless they are already
    there for this CA and address."""
    ca_cert, ca_key = ensure_ca(folder)
    ca_pem = _cert_pem(ca_cert)
    ca_fp = hashlib.sha256(ca_pem.encode()).hexdigest()
    for name, address, dest in nodes:
        if node_is_current(dest, address, ca_fp):
            continue
        for kind in ('server', 'client'):
            key = _new_key()
            cert = build_certificate(
                kind, address if kind == 'server' else '%s client' % name,
                key, ca_key, ca_cert.subject, address, 'lab-' + name)
            rt.write_file(os.path.join(dest, '%s-key.pem' % kind),
                          _key_pem(key), 0o600)
            rt.write_file(os.path.join(dest, '%s-cert.pem' % kind),
                          _cert_pem(cert))
        rt.write_file(os.path.join(dest, 'ca-cert.pem'), ca_pem)
        rt.update_json(os.path.join(dest, _META), address=address,
                       ca=ca_fp)
