"""`aftercare devices provision`: one device's IoT identity, registry entry and agent files.

In order: check the customer exists and the thing is not registered yet; create the IoT thing
(an existing thing is reused); create an active certificate with a new key pair; write the
certificate, the private key (0600) and `agent.json` to the output directory (the key is only
returned once, so nothing else may fail before it is on disk); attach the stack's
`DeviceIoTPolicy` to the certificate and the certificate to the thing; register the device in
DevicesTable in the shape fault intake reads (`DeviceRecord`).

`agent.json` names the broker (the account's `iot:Data-ATS` endpoint on 8883 in AWS, the local
stack's `mqtt_url` locally) and the CA: in AWS "AmazonRootCA1", which the agent takes from
certifi's bundle (or the system store, or `--ca-file`) rather than downloading it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from aftercare.adapters.registry import DeviceExists, DeviceRegistry
from aftercare.domain.ports import DeviceRecord
from botocore.exceptions import ClientError

from infra.local.basic_ingest import ingest_rules
from infra.stores import registry_of
from infra.target import Target

CERT_FILE: Final = "certificate.pem.crt"
ROOT_CA_FILE: Final = "root-ca.pem"  # the local stack's CA (AWS: Amazon Root CA 1, named)
KEY_FILE: Final = "private.pem.key"
CONFIG_FILE: Final = "agent.json"
AMAZON_ROOT_CA: Final = "AmazonRootCA1"
WARRANTY_DAYS: Final = 730


class ProvisionError(RuntimeError):
    """The device cannot be provisioned as asked (the message says why)."""


@dataclass(frozen=True)
class DeviceRequest:
    thing: str
    model: str
    customer_id: str
    region: str | None = None
    serial: str | None = None
    warranty_until: date | None = None
    firmware: str = "1.0.0"


def device_record(request: DeviceRequest, region: str, today: date) -> DeviceRecord:
    """The registry item of a newly provisioned device."""
    return DeviceRecord(
        thing=request.thing,
        serial=request.serial or f"SN-{request.thing}",
        model=request.model,
        customer_id=request.customer_id,
        region=region,
        activated_at=today,
        warranty_until=request.warranty_until or today + timedelta(days=WARRANTY_DAYS),
        firmware=request.firmware,
    )


def agent_document(
    request: DeviceRequest,
    broker_url: str,
    *,
    stack: str,
    tls: bool,
    ingest: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`agent.json`: what `aftercare device run --config` needs (paths relative to the file);
    `ingest` names the stack's rules the device reports to by Basic Ingest."""
    return {
        "thing": request.thing,
        "broker_url": broker_url,
        "model": request.model,
        "firmware": request.firmware,
        "cert_file": CERT_FILE,
        "key_file": KEY_FILE,
        "ca": AMAZON_ROOT_CA if tls else None,
        "ca_file": None,
        "stack": stack,
        "ingest_rules": dict(ingest) if ingest else None,
    }


def _write(path: Path, text: str, mode: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def prepare_out_dir(out_dir: Path) -> None:
    """Create the directory; refuse to overwrite an earlier device's key."""
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = [name for name in (CERT_FILE, KEY_FILE, CONFIG_FILE) if (out_dir / name).exists()]
    if existing:
        raise ProvisionError(f"{out_dir} already holds {', '.join(existing)}; use a new --out")


def write_credentials(
    out_dir: Path, certificate_pem: str, private_key: str, document: dict[str, Any]
) -> dict[str, str]:
    """The three files, the private key readable by its owner only; returns their paths."""
    files = {
        "certificate": out_dir / CERT_FILE,
        "private_key": out_dir / KEY_FILE,
        "config": out_dir / CONFIG_FILE,
    }
    _write(files["certificate"], certificate_pem, 0o644)
    _write(files["private_key"], private_key, 0o600)
    _write(files["config"], json.dumps(document, indent=2) + "\n", 0o644)
    return {name: str(path.resolve()) for name, path in files.items()}


def _check_new(registry: DeviceRegistry, request: DeviceRequest) -> str:
    if not registry.has_customer(request.customer_id):
        raise ProvisionError(
            f"no customer {request.customer_id} (run `aftercare admin seed`, or pick another)"
        )
    if registry.get_device(request.thing) is not None:
        raise ProvisionError(f"device {request.thing} is registered already")
    region = request.region or registry.customer_region(request.customer_id)
    if region is None:
        raise ProvisionError(f"customer {request.customer_id} has no devices yet: pass --region")
    return region


def _create_thing(iot: Any, request: DeviceRequest) -> None:
    attributes = {"model": request.model, "customer_id": request.customer_id}
    try:
        iot.create_thing(thingName=request.thing, attributePayload={"attributes": attributes})
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise


def _local_identity(
    target: Target, iot: Any, request: DeviceRequest, broker_url: str, out_dir: Path
) -> tuple[dict[str, Any], dict[str, str]]:
    """Locally the broker trusts only its own CA: the device gets a certificate from it (as the
    seeded fleet does), registered in the local IoT registry like a certificate from AWS."""
    from infra.local.broker_auth import issue_device_credentials

    state_dir = Path(target.state["devices_dir"]).parent
    credentials = issue_device_credentials(state_dir, request.thing)
    pem = credentials.cert_file.read_text()
    registered = iot.register_certificate_without_ca(certificatePem=pem, status="ACTIVE")
    document = agent_document(
        request, broker_url, stack=target.name, tls=True, ingest=ingest_rules(target.resources)
    )
    document["ca"] = None
    document["ca_file"] = ROOT_CA_FILE
    files = write_credentials(out_dir, pem, credentials.key_file.read_text(), document)
    _write(out_dir / ROOT_CA_FILE, credentials.ca_file.read_text(), 0o644)
    files["root_ca"] = str((out_dir / ROOT_CA_FILE).resolve())
    return registered, files


def provision_device(target: Target, request: DeviceRequest, out_dir: Path) -> dict[str, Any]:
    """Provision one device (see the module docstring); returns what the command prints."""
    registry = registry_of(target)
    region = _check_new(registry, request)
    policy = target.resource("DeviceIoTPolicy")
    broker_url = target.mqtt_url
    prepare_out_dir(out_dir)
    iot = target.client("iot")
    _create_thing(iot, request)
    if target.is_aws:
        certificate = iot.create_keys_and_certificate(setAsActive=True)
        document = agent_document(
            request, broker_url, stack=target.name, tls=True, ingest=ingest_rules(target.resources)
        )
        files = write_credentials(
            out_dir, certificate["certificatePem"], certificate["keyPair"]["PrivateKey"], document
        )
    else:
        certificate, files = _local_identity(target, iot, request, broker_url, out_dir)
    iot.attach_policy(policyName=policy, target=certificate["certificateArn"])
    iot.attach_thing_principal(thingName=request.thing, principal=certificate["certificateArn"])
    record = device_record(request, region, datetime.now(UTC).date())
    try:
        registry.register_device(record.model_dump(mode="json"))
    except DeviceExists as exc:
        raise ProvisionError(str(exc)) from exc
    return {
        "thing": request.thing,
        "certificate_id": certificate["certificateId"],
        "certificate_arn": certificate["certificateArn"],
        "policy": policy,
        "broker_url": broker_url,
        "device": record.model_dump(mode="json"),
        "files": files,
    }
