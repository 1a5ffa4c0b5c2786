"""Certificates and keys for one devcluster: a CA, the API server's serving cert, an admin client
cert (O=system:masters) and the service-account signing key. Made fresh for every `up`."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=30)


@dataclass(frozen=True)
class Pki:
    """Paths of every PEM file the components and the kubeconfig need."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _sign(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _leaf_usage(server: bool) -> list[tuple[x509.ExtensionType, bool]]:
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    return [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.KeyUsage(True, False, True, False, False, False, False, False, False), True),
        (x509.ExtendedKeyUsage([usage]), False),
    ]


def pki_paths(directory: Path) -> Pki:
    """Where the certificates and keys of a devcluster are (created or not)."""
    return Pki(*(directory / n for n in ("ca.crt", "ca.key", "apiserver.crt", "apiserver.key",
                                         "admin.crt", "admin.key", "sa.key", "sa.pub")))


def create_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    pki = pki_paths(directory)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("healthflow-devcluster-ca")
    ca_cert = _sign(ca_name, ca_key, ca_name, ca_key, [
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (x509.KeyUsage(True, False, False, False, False, True, True, False, False), True),
    ])
    _write_key(pki.ca_key, ca_key)
    _write_cert(pki.ca_cert, ca_cert)

    server_key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(n) for n in ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                        "kubernetes.default.svc.cluster.local")]
    ips = [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "10.96.0.1")]
    server_cert = _sign(_name("kube-apiserver"), server_key, ca_name, ca_key,
                        _leaf_usage(server=True) + [(x509.SubjectAlternativeName(names + ips), False)])
    _write_key(pki.server_key, server_key)
    _write_cert(pki.server_cert, server_cert)

    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin_cert = _sign(_name("devcluster-admin", "system:masters"), admin_key, ca_name, ca_key, _leaf_usage(server=False))
    _write_key(pki.admin_key, admin_key)
    _write_cert(pki.admin_cert, admin_cert)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki.sa_key, sa_key)
    pki.sa_pub.write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return pki
