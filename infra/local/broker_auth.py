"""Who may talk to the local broker: a local certificate authority and per-client certificates.

As in AWS IoT Core, every MQTT client of the local stack authenticates with an X.509 client
certificate, and the broker takes the certificate's Common Name as the client's identity:
a device's CN is its thing name, an internal component's CN is its own name (see
``COMPONENTS``). Mosquitto is configured (``broker_config_lines``) with
``require_certificate true`` + ``use_identity_as_username true`` (the CN becomes the username)
and ``use_username_as_clientid true`` (the username becomes the client id, whatever client id
the client asked for), so a client can only ever be itself: that is how the local broker
enforces the IoT policy's ``iot:Connect`` on ``client/${iot:Connection.Thing.ThingName}``.

Files, all under the stack's state dir (never committed; ``.aftercare/`` is git-ignored):

- ``broker/ca.pem`` + ``broker/ca.key``: the local CA (created once, reused by later runs, so
  credentials issued earlier stay valid);
- ``broker/server.pem`` + ``broker/server.key``: the broker's certificate (127.0.0.1, localhost);
- ``devices/<thing>/certificate.pem.crt``, ``private.pem.key``, ``root-ca.pem``: a device's
  credentials (the names AWS IoT's console downloads use);
- ``broker/clients/<component>/...``: the same three files for internal components.

Certificates use ECDSA P-256: issuing one takes well under a millisecond and so does its TLS
handshake, so a 1,000-device simulated fleet connects as fast as it did without TLS.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import paho.mqtt.client as mqtt
from aftercare.models.ids import THING_NAME_PATTERN
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devices.config import CERT_FILE, KEY_FILE, ROOT_CA_FILE

BROKER_DIR: Final = "broker"
DEVICES_DIR: Final = "devices"
CA_CERT: Final = "ca.pem"
CA_KEY: Final = "ca.key"
SERVER_CERT: Final = "server.pem"
SERVER_KEY: Final = "server.key"
VALIDITY: Final = dt.timedelta(days=3650)

# Internal components of the local stack that connect to the broker (their CN and client id).
IOT_RULES: Final = "aftercare-local-iot-rules"
IOT_DATA: Final = "aftercare-local-iot-data"
COMPONENTS: Final = (IOT_RULES, IOT_DATA)

# Mosquitto substitutes %u/%c in ACL patterns only when the name has no '+', '#' or '/'.
_IDENTITY: Final = re.compile(THING_NAME_PATTERN)  # a thing name is a broker identity


class CredentialsError(ValueError):
    """An identity that cannot be a local broker client, or unreadable credential files."""


@dataclass(frozen=True)
class ClientCredentials:
    """One client's TLS files: give them to paho's ``tls_set(ca_certs, certfile, keyfile)``."""

    identity: str
    ca_file: Path
    cert_file: Path
    key_file: Path

    @property
    def certificate_id(self) -> str:
        """SHA-256 of the certificate's DER bytes, in hex: what AWS IoT calls certificateId."""
        certificate = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        return certificate.fingerprint(hashes.SHA256()).hex()

    @property
    def directory(self) -> Path:
        return self.cert_file.parent

    def configure(self, client: mqtt.Client) -> None:
        """Make ``client`` connect over TLS with these credentials (``mqtts://`` only)."""
        client.tls_set(
            ca_certs=str(self.ca_file), certfile=str(self.cert_file), keyfile=str(self.key_file)
        )

    @property
    def files(self) -> dict[str, str]:
        return {
            "certificate": str(self.cert_file),
            "private_key": str(self.key_file),
            "root_ca": str(self.ca_file),
        }


def broker_dir(state_dir: Path) -> Path:
    return state_dir / BROKER_DIR


def device_dir(state_dir: Path, thing: str) -> Path:
    return state_dir / DEVICES_DIR / thing


def issue_device_credentials(state_dir: Path, thing: str) -> ClientCredentials:
    """Local device ``thing``'s credentials: issued by the local CA on first call, then reused.

    This is what ``aftercare devices provision`` and the seed call for a local device; the
    files land in ``<state_dir>/devices/<thing>/`` (see ``ClientCredentials.files``). The
    broker needs no reload: it trusts every certificate its CA signed.
    """
    if thing in COMPONENTS:
        raise CredentialsError(f"{thing!r} is reserved for the local stack's own component")
    return _issue(state_dir, thing, device_dir(state_dir, thing))


def device_credentials(state_dir: Path, thing: str) -> ClientCredentials | None:
    """The credentials issued earlier for ``thing``, or None when it has none."""
    credentials = _in_directory(thing, device_dir(state_dir, thing))
    return credentials if credentials.cert_file.is_file() else None


def component_credentials(state_dir: Path, component: str) -> ClientCredentials:
    """The credentials of an internal component of the local stack (one of ``COMPONENTS``)."""
    if component not in COMPONENTS:
        raise CredentialsError(f"{component!r} is not an internal component of the local stack")
    return _issue(state_dir, component, broker_dir(state_dir) / "clients" / component)


def broker_config_lines(state_dir: Path, acl_file: Path) -> list[str]:
    """The TLS and access-control lines of ``mosquitto.conf`` (after the ``listener`` line).

    The listener takes only clients whose certificate the local CA signed; the CN becomes the
    username and the username the client id; ``acl_file`` says who may publish and subscribe
    where; retained messages are refused (MQTT 5 clients get an error, 3.1.1 clients are
    disconnected), as AWS IoT does when a policy grants no ``iot:RetainPublish``.
    """
    ca = ensure_ca(state_dir)
    server_cert, server_key = _ensure_server_certificate(state_dir)
    return [
        f"cafile {ca}",
        f"certfile {server_cert}",
        f"keyfile {server_key}",
        "require_certificate true",
        "use_identity_as_username true",
        "use_username_as_clientid true",
        "allow_anonymous false",
        f"acl_file {acl_file}",
        "retain_available false",
    ]


def ensure_ca(state_dir: Path) -> Path:
    """The local CA certificate, created (with its key) the first time."""
    directory = broker_dir(state_dir)
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if cert_path.is_file() and key_path.is_file():
        return cert_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Aftercare local CA")])
    certificate = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    _write_atomically(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
    return cert_path


# ---- internals ----------------------------------------------------------------------------


def _issue(state_dir: Path, identity: str, directory: Path) -> ClientCredentials:
    if not _IDENTITY.match(identity):
        raise CredentialsError(
            f"{identity!r} cannot be a broker identity: use 1-128 of [A-Za-z0-9:_-]"
        )
    ca_path = ensure_ca(state_dir)
    credentials = _in_directory(identity, directory)
    if _signed_by(credentials, ca_path):
        return credentials
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _load_ca(state_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity)])
    certificate = (
        _builder(name, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(credentials.key_file, _key_pem(key))
    _write_atomically(credentials.cert_file, certificate.public_bytes(serialization.Encoding.PEM))
    _write_atomically(credentials.ca_file, ca_path.read_bytes())
    return credentials


def _in_directory(identity: str, directory: Path) -> ClientCredentials:
    return ClientCredentials(
        identity=identity,
        ca_file=directory / ROOT_CA_FILE,
        cert_file=directory / CERT_FILE,
        key_file=directory / KEY_FILE,
    )


def _signed_by(credentials: ClientCredentials, ca_path: Path) -> bool:
    """Whether complete credentials exist and the current CA issued them."""
    paths = (credentials.cert_file, credentials.key_file, credentials.ca_file)
    if not all(path.is_file() for path in paths):
        return False
    return credentials.ca_file.read_bytes() == ca_path.read_bytes()


def _ensure_server_certificate(state_dir: Path) -> tuple[Path, Path]:
    directory = broker_dir(state_dir)
    cert_path, key_path = directory / SERVER_CERT, directory / SERVER_KEY
    ca_path = ensure_ca(state_dir)
    if cert_path.is_file() and key_path.is_file() and _issued_by_file(cert_path, ca_path):
        return cert_path, key_path
    ca_key, ca_cert = _load_ca(state_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        _builder(name, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    _write_atomically(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _issued_by_file(cert_path: Path, ca_path: Path) -> bool:
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    return certificate.issuer == ca.subject and certificate.not_valid_after_utc > _now()


def _load_ca(state_dir: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    directory = broker_dir(state_dir)
    key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CredentialsError(f"{directory / CA_KEY} is not the local CA's EC key")
    return key, x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    _write_atomically(path, data, mode=0o600)


def _write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)
