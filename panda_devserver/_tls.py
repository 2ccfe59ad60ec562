"""A test PKI for the development server, made with the ``cryptography`` package.

:func:`make_test_pki` writes into a directory: a CA (``ca/ca.pem``, also as ``ca/<subject hash>.0`` so that the
directory works as an OpenSSL CA directory, like ``/etc/grid-security/certificates``), a server certificate for
127.0.0.1 and ``localhost`` (IP and DNS SANs), an expired server certificate, and a client certificate with its key in
one PEM file (the layout of an X509 proxy file, which a client loads as certificate and key at once).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pilotlib._atomic import write_atomic


@attrs.frozen
class TestPKI:
    """Paths of a generated test PKI."""

    ca_dir: Path
    ca_file: Path
    server_cert: Path
    server_key: Path
    expired_cert: Path
    expired_key: Path
    client_proxy: Path
    client_subject: str


def _name(common_name: str) -> x509.Name:
    # lower-case UTF8String values only: then OpenSSL's canonical encoding is the DER itself (see subject_hash)
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pilotlib test"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def subject_hash(name: x509.Name) -> str:
    """OpenSSL's ``X509_NAME_hash`` (``openssl x509 -hash``) for names made of lower-case UTF8String values.

    The hash is the first four bytes, little-endian, of the SHA-1 of the name's canonical encoding: the DER of its
    RDN sets without the outer SEQUENCE header, values lower-cased UTF8Strings (what :func:`_name` makes).
    """
    der = name.public_bytes()
    header = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    digest = hashlib.sha1(der[header:], usedforsecurity=False).digest()
    return f"{int.from_bytes(digest[:4], 'little'):08x}"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _issue(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey],
           not_after: datetime.datetime, *, leaf: bool, server: bool = True) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer[0]).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(now - datetime.timedelta(days=1), not_after - datetime.timedelta(days=1)))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=not leaf, path_length=None), critical=True)
    )
    if leaf and server:
        sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif leaf:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
    return builder.sign(issuer[1], hashes.SHA256())


def _write(path: Path, *parts: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, b"".join(parts), fsync=False, mode=0o600)  # never readable by others, even for a moment
    return path


def make_test_pki(directory: Path, ca_name: str = "pilotlib test ca") -> TestPKI:
    """Generate a CA, a valid and an expired server certificate and a client "proxy" under ``directory``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, ca_subject = _key(), _name(ca_name)
    ca_cert = _issue(ca_subject, ca_key, (ca_subject, ca_key), now + datetime.timedelta(days=30), leaf=False)
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    ca_dir = directory / "ca"
    ca_file = _write(ca_dir / "ca.pem", ca_pem)
    _write(ca_dir / f"{subject_hash(ca_subject)}.0", ca_pem)
    issuer = (ca_subject, ca_key)
    paths: dict[str, Path] = {}
    lifetimes = (("server", now + datetime.timedelta(days=7)), ("expired", now - datetime.timedelta(days=1)))
    for label, not_after in lifetimes:
        key = _key()
        cert = _issue(_name("127.0.0.1"), key, issuer, not_after, leaf=True)
        paths[f"{label}_cert"] = _write(directory / f"{label}.pem", cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{label}_key"] = _write(directory / f"{label}.key", _pem_key(key))
    client_key, client_subject = _key(), _name("pilot user")
    client = _issue(client_subject, client_key, issuer, now + datetime.timedelta(days=7), leaf=True, server=False)
    proxy = _write(directory / "x509up", client.public_bytes(serialization.Encoding.PEM), _pem_key(client_key))
    return TestPKI(
        ca_dir=ca_dir, ca_file=ca_file, server_cert=paths["server_cert"], server_key=paths["server_key"],
        expired_cert=paths["expired_cert"], expired_key=paths["expired_key"], client_proxy=proxy,
        client_subject=client_subject.rfc4514_string(),
    )
