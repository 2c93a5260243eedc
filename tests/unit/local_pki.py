"""A throwaway certificate authority and server certificate, made at test time for local TLS servers.

Nothing secret is committed: every run makes its own keys. EC P-256 keys, since
they take a millisecond where RSA takes a tenth of a second.
"""

import datetime
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class ServerFiles(NamedTuple):
    cafile: str  # the CA's certificate, what a client trusts
    certfile: str  # the server's certificate
    keyfile: str  # the server's private key


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _valid_for_a_day(builder):
    # Five minutes back, so a clock a little behind still accepts the certificate.
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(
        now + datetime.timedelta(days=1))


def _write(path, data):
    path.write_bytes(data)
    return str(path)


def make_server_files(directory, server_name):
    """A new CA, and a certificate it signed for `server_name`, as PEM files in `directory`."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_certificate = _valid_for_a_day(
        x509.CertificateBuilder().subject_name(_name("Local test CA")).issuer_name(_name("Local test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
    ).sign(ca_key, hashes.SHA256())
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_certificate = _valid_for_a_day(
        x509.CertificateBuilder().subject_name(_name(server_name)).issuer_name(ca_certificate.subject)
        .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(server_name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    ).sign(ca_key, hashes.SHA256())
    return ServerFiles(
        cafile=_write(directory / "ca.pem", ca_certificate.public_bytes(serialization.Encoding.PEM)),
        certfile=_write(directory / "server.pem", server_certificate.public_bytes(serialization.Encoding.PEM)),
        keyfile=_write(directory / "server.key", server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
    )
