"""Device agent configuration: broker address, MQTT protocol, session and TLS settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from aftercare.models.ids import FaultCode, ThingName
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
ONE_DAY_S = 86_400

# MQTT 5 CONNACK 0x84; paho also maps a 3.1.1 broker's "unacceptable protocol level" (1) onto it.
UNSUPPORTED_PROTOCOL_VERSION = 0x84
V311_REFUSED_PROTOCOL_VERSION = 1


# A provisioned device's credential files, as AWS IoT's console names them; the local stack
# writes them to ``<state dir>/devices/<thing>/`` (see infra/local/broker_auth.py).
CERT_FILE = "certificate.pem.crt"
KEY_FILE = "private.pem.key"
ROOT_CA_FILE = "root-ca.pem"


def credential_files(directory: Path) -> dict[str, Path]:
    """``ca_file``/``cert_file``/``key_file`` for ``AgentConfig`` from a credentials directory."""
    return {
        "ca_file": directory / ROOT_CA_FILE,
        "cert_file": directory / CERT_FILE,
        "key_file": directory / KEY_FILE,
    }


class BrokerUrlError(ValueError):
    """A broker URL that is not ``mqtt://HOST[:PORT]`` or ``mqtts://HOST[:PORT]``."""


class MqttProtocol(StrEnum):
    """The MQTT protocol version the agent speaks."""

    V5 = "5"
    V311 = "3.1.1"


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker listens and whether the connection uses TLS."""

    host: str
    port: int
    tls: bool


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse ``mqtt://host:port`` (plain TCP) or ``mqtts://host:port`` (TLS, default port 8883)."""
    expected = "expected mqtt://HOST:PORT or mqtts://HOST:8883"
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise BrokerUrlError(f"unsupported broker URL {url!r}: {expected}")
    extras = (parts.username, parts.password, parts.query, parts.fragment)
    if any(extras) or parts.path not in ("", "/"):
        raise BrokerUrlError(f"broker URL {url!r} carries more than a host and port: {expected}")
    try:
        port = parts.port
    except ValueError as exc:
        raise BrokerUrlError(f"broker URL {url!r} has an invalid port: {expected}") from exc
    if not parts.hostname:
        raise BrokerUrlError(f"broker URL {url!r} has no host: {expected}")
    return BrokerAddress(
        host=parts.hostname, port=port or DEFAULT_PORTS[parts.scheme], tls=parts.scheme == "mqtts"
    )


def should_fall_back_to_v311(protocol: MqttProtocol, reason_code: int, *, allowed: bool) -> bool:
    """Decide whether a refused CONNECT means "this broker does not speak MQTT 5"."""
    refused_version = reason_code in (UNSUPPORTED_PROTOCOL_VERSION, V311_REFUSED_PROTOCOL_VERSION)
    return allowed and protocol is MqttProtocol.V5 and refused_version


RuleName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9_]{1,128}$")]


class IngestRules(BaseModel):
    """The stack's IoT rules a device reports to directly (AWS IoT Basic Ingest): the device
    publishes to `$aws/rules/<rule>/<topic>`, which skips the message broker and its per-message
    charge. The names are the stack's (`aftercare_fault_intake_<stage>`, ...): the
    provisioning command writes them to `agent.json`, the local stack to its state file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fault: RuleName
    telemetry: RuleName
    diagnostics_result: RuleName

    @classmethod
    def of_stack(cls, state: Mapping[str, Any]) -> IngestRules | None:
        """The rules a local stack's state file (`local.json`) names; None if it names none."""
        rules = state.get("ingest_rules")
        return cls.model_validate(rules) if rules else None


BASIC_INGEST_PREFIX = "$aws/rules"


@dataclass(frozen=True, slots=True)
class DeviceTopics:
    """The MQTT topics of one thing (see CONTRACT.md); with `ingest`, the three uplinks go to
    their rules by Basic Ingest (the rules select the same topics through the broker too)."""

    fault: str
    telemetry: str
    diagnostics_request: str
    diagnostics_result: str
    diagnostics_cancel: str

    @classmethod
    def for_thing(cls, thing: str, ingest: IngestRules | None = None) -> DeviceTopics:
        def uplink(rule: str | None, topic: str) -> str:
            return f"{BASIC_INGEST_PREFIX}/{rule}/{topic}" if rule else topic

        fault, telemetry, result = (
            (ingest.fault, ingest.telemetry, ingest.diagnostics_result) if ingest else (None,) * 3
        )
        return cls(
            fault=uplink(fault, f"dt/aftercare/{thing}/fault"),
            telemetry=uplink(telemetry, f"dt/aftercare/{thing}/telemetry"),
            diagnostics_request=f"cmd/aftercare/{thing}/diagnostics/req",
            diagnostics_result=uplink(result, f"cmd/aftercare/{thing}/diagnostics/res"),
            diagnostics_cancel=f"cmd/aftercare/{thing}/diagnostics/cancel",
        )


class AgentConfig(BaseModel):
    """Everything one device agent needs; validated up front so misconfiguration fails fast.

    ``outbox_poll_s`` makes a running agent pick up faults that another process (``aftercare
    device fault``) queued in the same outbox; ``remote_fixable_codes`` are the fault codes the
    simulated device can clear itself when ``reset_component`` asks.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    thing: ThingName
    broker_url: str
    outbox_dir: Path
    firmware: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "1.0.0"
    model: str | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=1200)] = 60
    protocol: MqttProtocol = MqttProtocol.V5
    fallback_to_v311: bool = True
    persistent_session: bool = True
    session_expiry_s: Annotated[int, Field(ge=0, le=7 * ONE_DAY_S)] = ONE_DAY_S
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    reconnect_min_delay_s: Annotated[int, Field(ge=1)] = 1
    reconnect_max_delay_s: Annotated[int, Field(ge=1)] = 60
    outbox_poll_s: Annotated[float, Field(gt=0)] | None = None
    outbox_fsync: bool = True
    remote_fixable_codes: frozenset[FaultCode] = frozenset()
    ingest_rules: IngestRules | None = None  # None: every uplink through the message broker

    @field_validator("broker_url")
    @classmethod
    def _broker_url_parses(cls, value: str) -> str:
        parse_broker_url(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.reconnect_max_delay_s < self.reconnect_min_delay_s:
            raise ValueError("reconnect_max_delay_s must be >= reconnect_min_delay_s")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (X.509 client certificate + key)")
        tls_files = [f for f in (self.ca_file, self.cert_file, self.key_file) if f is not None]
        if tls_files and not self.broker.tls:
            raise ValueError("TLS files were given but the broker URL is not mqtts://")
        missing = [str(f) for f in tls_files if not f.is_file()]
        if missing:
            raise ValueError(f"TLS file(s) not found: {', '.join(missing)}")
        return self

    @property
    def broker(self) -> BrokerAddress:
        return parse_broker_url(self.broker_url)

    @property
    def topics(self) -> DeviceTopics:
        return DeviceTopics.for_thing(self.thing, self.ingest_rules)

    @property
    def outbox_path(self) -> Path:
        return self.outbox_dir / f"{self.thing}.sqlite3"

    @property
    def lock_path(self) -> Path:
        return self.outbox_dir / f"{self.thing}.lock"


AGENT_FILE = "agent.json"


class AgentFile(BaseModel):
    """``agent.json``, written by ``aftercare devices provision`` next to the certificate and key.

    File paths are relative to the file's directory. ``ca`` names the CA the broker's server
    certificate chains to (``AmazonRootCA1`` for AWS IoT Core) for the record; ``ca_file`` is a
    PEM bundle to trust instead of the default one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    thing: ThingName
    broker_url: str
    model: str | None = None
    firmware: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "1.0.0"
    cert_file: Path | None = None
    key_file: Path | None = None
    ca: str | None = None
    ca_file: Path | None = None
    stack: str | None = None
    ingest_rules: IngestRules | None = None

    @field_validator("broker_url")
    @classmethod
    def _broker_url_parses(cls, value: str) -> str:
        parse_broker_url(value)
        return value


@dataclass(frozen=True, slots=True)
class AgentCredentials:
    """What an ``agent.json`` gives the agent, paths resolved."""

    thing: str
    broker_url: str
    directory: Path
    model: str | None
    firmware: str
    cert_file: Path | None
    key_file: Path | None
    ca_file: Path | None
    ingest_rules: IngestRules | None = None


def read_agent_file(path: Path) -> AgentCredentials:
    """Read ``agent.json`` (``path`` may be the file or its directory).

    Over plain ``mqtt://`` (the local stack's broker, which does not check client certificates
    yet) the TLS files are left out. Over ``mqtts://`` without a ``ca_file`` the agent trusts
    certifi's bundle, which carries Amazon Root CA 1.
    """
    file = path / AGENT_FILE if path.is_dir() else path
    try:
        document = AgentFile.model_validate_json(file.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read the agent file {file}: {exc.strerror}") from exc
    base = file.parent
    tls = parse_broker_url(document.broker_url).tls

    def resolved(value: Path | None) -> Path | None:
        return None if value is None or not tls else base / value

    return AgentCredentials(
        thing=document.thing,
        broker_url=document.broker_url,
        directory=base,
        model=document.model,
        firmware=document.firmware,
        cert_file=resolved(document.cert_file),
        key_file=resolved(document.key_file),
        ca_file=resolved(document.ca_file) or (_default_ca_bundle() if tls else None),
        ingest_rules=document.ingest_rules,
    )


def _default_ca_bundle() -> Path | None:
    try:
        import certifi
    except ImportError:  # the system trust store, as paho's tls_set(ca_certs=None) uses
        return None
    return Path(certifi.where())
