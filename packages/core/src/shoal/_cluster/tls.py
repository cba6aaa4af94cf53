"""TLS for every cluster channel, switched on by one setting (``shoal start --head --tls``).

The head creates a self-signed certificate and key for the cluster and stores them,
0600, next to the cluster token (``~/.shoal/tls-HOST-PORT/``). Nodes and drivers that
find that folder for an address use TLS towards it, verifying the head's certificate;
the folder is copied to other machines together with the token.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import grpc

from shoal._cluster.client import channel_options

__all__ = ["tls_folder", "ensure_certificate", "server_credentials", "open_channel"]

# Certificates name "localhost"; clients check the cluster's certificate under that name,
# whatever address a node listens on.
_TARGET_NAME = "localhost"


def tls_folder(token_path: Path) -> Path:
    """Where the cluster whose token is at ``token_path`` keeps its certificate."""
    return token_path.with_name(token_path.name + ".tls")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _make_with_cryptography(host: str) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shoal cluster")])
    names: list[Any] = [x509.DNSName("localhost"), x509.DNSName(socket.gethostname())]
    for ip in {"127.0.0.1", host}:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError:
            names.append(x509.DNSName(ip))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _make_with_openssl(host: str) -> tuple[bytes, bytes]:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("TLS needs the `cryptography` package or the `openssl` command to create a certificate")
    with tempfile.TemporaryDirectory() as tmp:
        san = f"subjectAltName=DNS:localhost,DNS:{socket.gethostname()},IP:127.0.0.1"
        try:
            ipaddress.ip_address(host)
            if host != "127.0.0.1":
                san += f",IP:{host}"
        except ValueError:
            san += f",DNS:{host}"
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-days", "3650", "-subj", "/CN=shoal cluster", "-addext", san,
             "-keyout", f"{tmp}/key.pem", "-out", f"{tmp}/cert.pem"],
            check=True, capture_output=True,
        )  # fmt: skip
        return Path(tmp, "cert.pem").read_bytes(), Path(tmp, "key.pem").read_bytes()


def ensure_certificate(folder: Path, host: str) -> Path:
    """Create the cluster's certificate and key in ``folder`` unless they exist; the folder."""
    if (folder / "cert.pem").exists() and (folder / "key.pem").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        cert, key = _make_with_cryptography(host)
    except ImportError:
        cert, key = _make_with_openssl(host)
    _write_private(folder / "key.pem", key)
    _write_private(folder / "cert.pem", cert)
    return folder


def server_credentials(folder: Path) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials([((folder / "key.pem").read_bytes(), (folder / "cert.pem").read_bytes())])


def open_channel(address: str, folder: Path | None) -> grpc.Channel:
    """A channel to ``address``: TLS when the cluster has a certificate in ``folder``, plain otherwise."""
    cert = folder / "cert.pem" if folder is not None else None
    if cert is None or not cert.exists():
        return grpc.insecure_channel(address, options=channel_options())
    creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    options = [*channel_options(), ("grpc.ssl_target_name_override", _TARGET_NAME)]
    return grpc.secure_channel(address, creds, options=options)
