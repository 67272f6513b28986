"""The operator's `--aws` path against moto's AWS APIs: a CloudFormation stack named
`aftercare-test` built from template.yaml's own tables, queues, topics and IoT policy (the
Cognito pool and the API URL, which moto's CloudFormation cannot create, come in as Outputs),
resolved through ListStackResources/DescribeStacks, and the CLI commands run on it."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from aftercare.domain.intake import IntakeRules, intake_fault
from aftercare.domain.rules import load_catalog, load_policy
from aftercare.models.payloads import FaultEnvelope
from moto import mock_aws

from infra.cli import main
from infra.local.template import load_template
from infra.stores import store_of
from infra.target import Target, TargetError, resolve_aws_target

ROOT = Path(__file__).resolve().parents[2]
# The KMS key encrypts the ops and purchasing topics; the topics refer to it.
STACKED_TYPES = {
    "AWS::DynamoDB::Table",
    "AWS::SQS::Queue",
    "AWS::SNS::Topic",
    "AWS::IoT::Policy",
    "AWS::KMS::Key",
}
AWS = ["--aws", "--stage", "test"]
PASSWORD = "Operator-pass-1"


@pytest.fixture(autouse=True)
def aws_env(fake_aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AFTERCARE_PASSWORD", raising=False)


def _user_pool() -> tuple[str, str]:
    cognito = boto3.client("cognito-idp")
    pool = cognito.create_user_pool(
        PoolName="aftercare-users-test",
        Schema=[{"Name": "customer_id", "AttributeDataType": "String", "Mutable": True}],
    )["UserPool"]["Id"]
    client = cognito.create_user_pool_client(
        UserPoolId=pool,
        ClientName="aftercare-support-test",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    for group in ("engineers", "managers", "customers"):
        cognito.create_group(UserPoolId=pool, GroupName=group)
    return pool, client


def stack_template(pool_id: str, client_id: str) -> dict[str, Any]:
    """template.yaml's own resources of the types moto's CloudFormation creates."""
    template = load_template(ROOT / "template.yaml")
    resources = {
        logical_id: {"Type": resource.type, "Properties": resource.properties}
        for logical_id, resource in template.resources.items()
        if resource.type in STACKED_TYPES
    }
    # moto's CloudFormation creates no topic rules: the device policy's Basic Ingest resources
    # name them with !Ref, which a parameter of the same name answers here
    rules = {
        logical_id: {"Type": "String", "Default": f"{logical_id.lower()}_test"}
        for logical_id, resource in template.resources.items()
        if resource.type == "AWS::IoT::TopicRule"
    }
    return {
        "Parameters": {"Stage": {"Type": "String"}, **rules},
        "Resources": resources,
        "Outputs": {
            "ServiceUserPoolId": {"Value": pool_id},
            "ServiceUserPoolClientId": {"Value": client_id},
            "ServiceApiUrl": {"Value": "https://api.example.invalid"},
            # moto lists no IoT policy and its Ref is not the name: the output names it.
            "DeviceIoTPolicyName": {"Value": {"Fn::Sub": "aftercare-device-${Stage}"}},
        },
    }


@pytest.fixture
def deployed() -> Iterator[None]:
    with mock_aws():
        pool_id, client_id = _user_pool()
        boto3.client("cloudformation").create_stack(
            StackName="aftercare-test",
            TemplateBody=json.dumps(stack_template(pool_id, client_id)),
            Parameters=[{"ParameterKey": "Stage", "ParameterValue": "test"}],
        )
        yield


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip().startswith(("{", "[")) else out, err


# --------------------------------------------------------------------------- resolution


def test_the_stack_resolves_to_the_logical_ids_of_the_local_state_file(deployed: None) -> None:
    target = resolve_aws_target("test")
    assert target.resource("InventoryTable") == "aftercare-inventory-test"
    assert target.resource("FaultQueue").startswith("https://sqs.")
    assert target.resource("DeviceIoTPolicy") == "aftercare-device-test"
    assert target.resource("ServiceUserPoolClient") == target.output("ServiceUserPoolClientId")
    assert target.mqtt_url.startswith("mqtts://") and target.mqtt_url.endswith(":8883")


def test_a_missing_stack_is_named(deployed: None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(TargetError, match="aftercare-nope"):
        resolve_aws_target("nope")
    code, _, err = run(capsys, "devices", "list", "--aws", "--stage", "nope")
    assert code == 1 and "aftercare-nope" in err


# --------------------------------------------------------------------------- commands


def test_seed_is_idempotent_and_parts_commands_work(
    deployed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, first, _ = run(capsys, "admin", "seed", "--demo-customers", *AWS)
    assert code == 0 and first["created"]["stock"] > 0 and first["created"]["customer"] == 81
    code, second, _ = run(capsys, "admin", "seed", "--demo-customers", *AWS)
    assert second["created"] == {} and second["unchanged"] == first["created"]
    code, stock, _ = run(capsys, "parts", "stock", "--json", "--sku", "PSU-240-A", *AWS)
    assert code == 0 and {r["warehouse"] for r in stock} == {"WH-DUB", "WH-FRA", "WH-SHA", "WH-NYC"}
    # Stock received since the seed is neither reset nor doubled by another seed.
    adjust = ["parts", "adjust", "PSU-240-A", "WH-DUB", "5", "--reason", "delivery", *AWS]
    assert run(capsys, *adjust)[0] == 0
    assert run(capsys, "admin", "seed", *AWS)[0] == 0
    _, after, _ = run(capsys, "parts", "stock", "--json", "--sku", "PSU-240-A", *AWS)
    dublin = {r["warehouse"]: r["on_hand"] for r in stock}["WH-DUB"]
    assert {r["warehouse"]: r["on_hand"] for r in after}["WH-DUB"] == dublin + 5


def _provision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert run(capsys, "admin", "seed", *AWS)[0] == 0
    code, shown, err = run(
        capsys,
        "devices", "provision", "--thing", "smoke-device-1", "--model", "AC-HP",
        "--customer", "c-smoke", "--region", "eu-west", "--out", str(tmp_path / "dev"),
        *AWS,
    )  # fmt: skip
    assert code == 0, err
    return dict(shown)


def test_provision_creates_the_iot_identity_the_registry_entry_and_the_files(
    deployed: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = _provision(tmp_path, capsys)
    iot = boto3.client("iot")
    arn = shown["certificate_arn"]
    assert iot.list_thing_principals(thingName="smoke-device-1")["principals"] == [arn]
    assert [p["policyName"] for p in iot.list_attached_policies(target=arn)["policies"]] == [
        "aftercare-device-test"
    ]
    status = iot.describe_certificate(certificateId=shown["certificate_id"])
    assert status["certificateDescription"]["status"] == "ACTIVE"
    key = Path(shown["files"]["private_key"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    config = json.loads(Path(shown["files"]["config"]).read_text())
    assert config["ca"] == "AmazonRootCA1" and config["broker_url"].startswith("mqtts://")
    code, devices, _ = run(capsys, "devices", "list", "--json", *AWS)
    assert [d["customer_id"] for d in devices if d["thing"] == "smoke-device-1"] == ["c-smoke"]
    code, _, err = run(
        capsys,
        "devices", "provision", "--thing", "smoke-device-1", "--model", "AC-HP",
        "--customer", "c-smoke", "--out", str(tmp_path / "again"), *AWS,
    )  # fmt: skip
    assert code == 1 and "registered already" in err


def test_set_status_on_a_ticket_holding_parts_gives_them_back(
    deployed: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _provision(tmp_path, capsys)
    store = store_of(resolve_aws_target("test"))
    now = datetime.now(UTC)
    report = {
        "fault_id": "aws-path-0001",
        "code": "PSU-OVERVOLT",
        "occurred_at": now.isoformat(),
        "firmware": "1.0.0",
    }
    rules = IntakeRules(
        catalog=load_catalog(),
        policy=load_policy(),
        repeat_window=timedelta(days=30),
        hold_duration=timedelta(hours=1),
    )
    envelope = FaultEnvelope(
        payload_b64=base64.b64encode(json.dumps(report).encode()).decode(),
        thing="smoke-device-1",
        received_at=int(now.timestamp() * 1000),
        topic="dt/aftercare/smoke-device-1/fault",
    )
    ticket_id = intake_fault(envelope, store, rules).ticket_id
    assert ticket_id is not None

    def held() -> int:
        _, rows, _ = run(capsys, "parts", "stock", "--json", "--sku", "PSU-240-A", *AWS)
        return sum(r["held"] for r in rows)

    assert held() == 1
    code, row, err = run(
        capsys, "tickets", "set-status", ticket_id, "cancelled", "--reason", "test", "--json", *AWS
    )
    assert code == 0, err
    assert row["status"] == "cancelled" and held() == 0


def test_users_are_created_in_their_group_and_can_log_in(
    deployed: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "admin", "seed", *AWS)[0] == 0
    state = ["--state-dir", str(tmp_path)]
    code, user, err = run(
        capsys, "admin", "users", "create", "--username", "ada", "--group", "engineers",
        "--password", PASSWORD, *AWS,
    )  # fmt: skip
    assert code == 0, err
    assert user["group"] == "engineers" and user["customer_id"] is None
    code, _, err = run(
        capsys, "admin", "users", "create", "--username", "eve", "--group", "engineers",
        "--customer-id", "c-smoke", "--password", PASSWORD, *AWS,
    )  # fmt: skip
    assert code == 1 and "staff" in err
    code, _, err = run(
        capsys, "admin", "users", "create", "--username", "bob", "--group", "customers",
        "--temporary-password", *AWS,
    )  # fmt: skip
    assert code == 1 and "--customer-id" in err
    code, customer, err = run(
        capsys, "admin", "users", "create", "--username", "carol", "--group", "customers",
        "--customer-id", "c-smoke", "--temporary-password", *AWS,
    )  # fmt: skip
    assert code == 0 and customer["temporary_password"]

    code, session, err = run(
        capsys, "login", "--user", "ada", "--password", PASSWORD, "--json", *AWS, *state
    )
    assert code == 0, err
    assert session["groups"] == ["engineers"]
    stored = tmp_path / "sessions" / "aftercare-test.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    code, session, err = run(
        capsys, "login", "--user", "carol", "--password", customer["temporary_password"],
        "--new-password", PASSWORD, "--json", *AWS, *state,
    )  # fmt: skip
    assert code == 0, err
    assert session["customer_id"] == "c-smoke"


def test_smoke_names_the_first_hop_that_failed(
    deployed: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # moto serves iot-data on the generic host only, and keeps the message: no topic rule
    # runs, so no ticket ever opens.
    monkeypatch.setattr(
        Target, "iot_data_host", lambda self: "data-ats.iot.us-east-1.amazonaws.com"
    )
    _provision(tmp_path, capsys)
    code, report, err = run(capsys, "smoke", "--timeout", "1", "--json", *AWS)
    assert code == 1 and report["ok"] is False
    assert [h["name"] for h in report["hops"]] == [
        "device_registered",
        "publish_fault",
        "ticket_opened",
    ]
    assert "ticket_opened" in err
    assert os.environ.get("AFTERCARE_PASSWORD") is None


@pytest.mark.parametrize(
    "command",
    [
        ["devices", "list"],
        ["tickets", "list"],
        ["dlq", "list"],
        ["parts", "stock"],
        ["parts", "reorder"],
        ["parts", "events"],
        ["notifications", "list"],
        ["surveys", "list"],
        ["surveys", "csat"],
        ["followups", "list"],
    ],
)
def test_every_reading_command_runs_on_the_deployed_stack(
    deployed: None, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    code, _, err = run(capsys, *command, "--json", *AWS)
    assert code == 0, err


def test_a_device_inherits_the_region_of_its_customers_other_devices(
    deployed: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "admin", "seed", *AWS)[0] == 0
    code, _, err = run(
        capsys, "devices", "provision", "--thing", "first", "--model", "RT-X",
        "--customer", "c-smoke", "--out", str(tmp_path / "first"), *AWS,
    )  # fmt: skip
    assert code == 1 and "pass --region" in err  # the customer has no device yet
    _provision(tmp_path, capsys)
    code, shown, err = run(
        capsys, "devices", "provision", "--thing", "second", "--model", "RT-X",
        "--customer", "c-smoke", "--out", str(tmp_path / "second"), *AWS,
    )  # fmt: skip
    assert code == 0, err
    assert shown["device"]["region"] == "eu-west"


def test_logged_in_commands_go_to_the_stacks_api_url(
    deployed: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = ["--state-dir", str(tmp_path)]
    create = ["--username", "ada", "--group", "engineers", "--password", PASSWORD]
    assert run(capsys, "admin", "users", "create", *create, *AWS)[0] == 0
    assert run(capsys, "login", "--user", "ada", "--password", PASSWORD, *AWS, *state)[0] == 0
    code, _, err = run(capsys, "diag", "run", "T-1", "--json", *AWS, *state)
    assert code == 1 and "https://api.example.invalid" in err
