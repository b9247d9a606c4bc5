"""Certificates generated for the TLS tests and the security scenarios: a CA, server and client certificates, and
bad ones (expired, wrong host, self-signed)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class CertSet:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    expired_cert: Path
    expired_key: Path
    wrong_host_cert: Path
    wrong_host_key: Path
    self_signed_cert: Path
    self_signed_key: Path
    #: A client certificate that signs itself (no CA vouches for it).
    self_signed_client_cert: Path
    self_signed_client_key: Path
    #: A client certificate the CA signed, out of date.
    expired_client_cert: Path
    expired_client_key: Path
    other_ca: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mqttchat tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])  # fmt: skip


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    cert_path = directory / f"{stem}.crt"
    key_path = directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    cn: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    hosts: list[str],
    usage: x509.ObjectIdentifier,
    expired: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    start, end = (now - dt.timedelta(days=30), now - dt.timedelta(days=1)) if expired else (
        now - dt.timedelta(days=1), now + dt.timedelta(days=30))  # fmt: skip
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_cert.subject if issuer_cert else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def make_certs(directory: Path) -> CertSet:
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca("mqttchat test CA")
    other = _ca("some other CA")
    server = ["127.0.0.1", "localhost"]
    paths: dict[str, Path] = {}
    for stem, (cert, key) in {
        "server": _leaf("127.0.0.1", ca, server, ExtendedKeyUsageOID.SERVER_AUTH),
        "client": _leaf("test-client", ca, [], ExtendedKeyUsageOID.CLIENT_AUTH),
        "expired": _leaf("127.0.0.1", ca, server, ExtendedKeyUsageOID.SERVER_AUTH, expired=True),
        "wrong_host": _leaf("broker.example.org", ca, ["broker.example.org"], ExtendedKeyUsageOID.SERVER_AUTH),
        "self_signed": _leaf("127.0.0.1", None, server, ExtendedKeyUsageOID.SERVER_AUTH),
        "self_signed_client": _leaf("test-client", None, [], ExtendedKeyUsageOID.CLIENT_AUTH),
        "expired_client": _leaf("test-client", ca, [], ExtendedKeyUsageOID.CLIENT_AUTH, expired=True),
    }.items():
        paths[f"{stem}_cert"], paths[f"{stem}_key"] = _write(directory, stem, cert, key)
    ca_path = directory / "ca.crt"
    ca_path.write_bytes(ca[0].public_bytes(serialization.Encoding.PEM))
    other_path = directory / "other-ca.crt"
    other_path.write_bytes(other[0].public_bytes(serialization.Encoding.PEM))
    return CertSet(ca=ca_path, other_ca=other_path, **paths)


def service_certs(directory: Path, names: list[str]) -> dict[str, Path]:
    """A CA ("ca"), a server certificate for ``names`` ("cert", "key", as a cloud service would present) and a
    client certificate ("client_cert", "client_key") it signed."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca("service test CA")
    cert_path, key_path = _write(directory, "service", *_leaf(names[0], ca, names, ExtendedKeyUsageOID.SERVER_AUTH))
    client_cert, client_key = _write(directory, "client", *_leaf("device", ca, [], ExtendedKeyUsageOID.CLIENT_AUTH))
    ca_path = directory / "ca.crt"
    ca_path.write_bytes(ca[0].public_bytes(serialization.Encoding.PEM))
    return {"ca": ca_path, "cert": cert_path, "key": key_path, "client_cert": client_cert, "client_key": client_key}
