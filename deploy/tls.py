"""A CA and a broker certificate for the Kafka brokers' SASL_SSL listener (`cryptography`).

`disparo certs` makes them for the compose file's brokers; the tests for 127.0.0.1. The
broker PEM (PKCS#8 key, then the chain) is what Kafka's `ssl.keystore.type=PEM` reads; the
CA PEM is what clients trust (`DISPARO_KAFKA_CA_FILE`). Keep them in separate volumes: the
services need the CA only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_certificates(
    directory: Path,
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
    days: int = 1,
    broker_directory: Path | None = None,
) -> tuple[Path, Path]:
    """(CA certificate PEM, broker PEM: PKCS#8 key then certificate chain): the CA under
    `directory`, the broker's under `broker_directory` (default: the same), valid `days`
    for `hosts` (names or IP addresses)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("disparo Kafka CA"))
        .issuer_name(_name("disparo Kafka CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    names = [_san(host) for host in hosts]
    server = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    broker_directory = broker_directory or directory
    broker_directory.mkdir(parents=True, exist_ok=True)
    broker_file = broker_directory / "broker.pem"
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    chain = server.public_bytes(serialization.Encoding.PEM) + ca_file.read_bytes()
    broker_file.write_bytes(pkcs8 + chain)
    return ca_file, broker_file
