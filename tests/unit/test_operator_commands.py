"""The pure parts of the operator commands: stack resolution, users, provisioning files,
the agent file, the seed's bookkeeping and the smoke run's hops."""

from __future__ import annotations

import json
import re
import stat
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from devices.config import read_agent_file
from infra.admin.provision import (
    DeviceRequest,
    ProvisionError,
    agent_document,
    device_record,
    prepare_out_dir,
    write_credentials,
)
from infra.admin.seed import item_kind
from infra.admin.users import NewUser, UserError, check_request, generate_password, user_attributes
from infra.seeding import demo_inventory, smoke_customer
from infra.smoke import HopFailed, Skipped, SmokeRun, smoke_fault_id, smoke_report
from infra.target import physical_ids, resources_from, stack_name_for

REQUEST = DeviceRequest(thing="smoke-device-1", model="AC-HP", customer_id="c-smoke")


def test_a_stage_is_the_stack_aftercare_stage_unless_named() -> None:
    assert stack_name_for("prod") == "aftercare-prod"
    assert stack_name_for("prod", "my-stack") == "my-stack"


def test_only_existing_resources_are_listed_and_outputs_never_override_them() -> None:
    listed = physical_ids(
        [
            {
                "LogicalResourceId": "FaultQueue",
                "PhysicalResourceId": "https://q",
                "ResourceStatus": "UPDATE_COMPLETE",
            },
            {
                "LogicalResourceId": "Old",
                "PhysicalResourceId": "o",
                "ResourceStatus": "DELETE_IN_PROGRESS",
            },
        ]
    )
    resources = resources_from(
        listed, {"FaultQueueUrl": "https://other", "OpsAlertsTopicArn": "arn"}
    )
    assert resources == {"FaultQueue": "https://q", "OpsAlertsTopic": "arn"}


@pytest.mark.parametrize(
    ("user", "problem"),
    [
        (NewUser("c", "customers", password="x"), "--customer-id"),
        (NewUser("e", "engineers", customer_id="c-1", password="x"), "staff"),
        (NewUser("m", "managers"), "--email"),
        (NewUser("m", "managers", password="p", temporary_password=True), "not both"),
        (NewUser("x", "admins", password="p"), "group must be"),
        (NewUser("m", "managers", engineer_id="E-ada", password="p"), "only engineers"),
        (NewUser("e", "engineers", engineer_id="ada", password="p"), "E-"),
    ],
)
def test_user_requests_that_cannot_work_are_refused_before_any_call(
    user: NewUser, problem: str
) -> None:
    with pytest.raises(UserError, match=problem):
        check_request(user)


def test_a_field_engineer_carries_their_engineer_id() -> None:
    user = NewUser("ada", "engineers", engineer_id="E-ada", password="Secret-123456")
    check_request(user)
    assert {"Name": "custom:engineer_id", "Value": "E-ada"} in user_attributes(user)


def test_a_customer_user_carries_its_customer_id() -> None:
    user = NewUser("carol", "customers", customer_id="c-0001", email="c@example.com")
    check_request(user)
    assert {"Name": "custom:customer_id", "Value": "c-0001"} in user_attributes(user)


def test_generated_passwords_meet_the_pool_policy() -> None:
    for _ in range(20):
        password = generate_password()
        assert len(password) >= 12
        assert re.search("[A-Z]", password) and re.search("[a-z]", password)
        assert re.search("[0-9]", password)


def test_a_new_device_gets_a_serial_and_two_years_of_warranty_by_default() -> None:
    record = device_record(REQUEST, "eu-west", date(2026, 1, 1))
    assert record.serial == "SN-smoke-device-1" and record.region == "eu-west"
    assert record.activated_at == date(2026, 1, 1) and record.warranty_until == date(2028, 1, 1)


def test_the_agent_file_names_amazons_ca_only_for_tls_brokers() -> None:
    aws = agent_document(
        REQUEST, "mqtts://abc-ats.iot.eu-west-1.amazonaws.com:8883", stack="s", tls=True
    )
    local = agent_document(REQUEST, "mqtt://127.0.0.1:1883", stack="local", tls=False)
    assert aws["ca"] == "AmazonRootCA1" and local["ca"] is None


def test_credentials_are_written_once_with_a_private_key_only_the_owner_reads(
    tmp_path: Path,
) -> None:
    prepare_out_dir(tmp_path)
    document = agent_document(REQUEST, "mqtt://127.0.0.1:1883", stack="local", tls=False)
    files = write_credentials(tmp_path, "CERT", "KEY", document)
    assert stat.S_IMODE(Path(files["private_key"]).stat().st_mode) == 0o600
    assert json.loads(Path(files["config"]).read_text())["thing"] == "smoke-device-1"
    with pytest.raises(ProvisionError, match="already holds"):
        prepare_out_dir(tmp_path)


def _agent_file(tmp_path: Path, broker_url: str, **extra: object) -> Path:
    document = agent_document(REQUEST, broker_url, stack="s", tls=broker_url.startswith("mqtts"))
    (tmp_path / "agent.json").write_text(json.dumps(document | extra))
    return tmp_path


def test_over_plain_mqtt_the_agent_leaves_its_certificate_out(tmp_path: Path) -> None:
    credentials = read_agent_file(_agent_file(tmp_path, "mqtt://127.0.0.1:1883"))
    assert credentials.thing == "smoke-device-1"
    assert credentials.cert_file is None and credentials.ca_file is None


def test_over_tls_the_agent_uses_its_files_and_a_bundle_with_amazons_root(tmp_path: Path) -> None:
    credentials = read_agent_file(
        _agent_file(tmp_path, "mqtts://abc-ats.iot.eu-west-1.amazonaws.com:8883") / "agent.json"
    )
    assert credentials.cert_file == tmp_path / "certificate.pem.crt"
    assert credentials.key_file == tmp_path / "private.pem.key"
    assert credentials.ca_file is not None and credentials.ca_file.is_file()


def test_an_agent_file_with_unknown_fields_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="brokr"):
        read_agent_file(_agent_file(tmp_path, "mqtt://127.0.0.1:1883", brokr="typo"))


def test_seeded_items_are_counted_by_kind() -> None:
    kinds = {item_kind(i) for i in demo_inventory()}
    assert kinds == {"part", "warehouse", "routing", "stock"}
    assert item_kind(smoke_customer().model_dump(mode="json")) == "customer"


def test_the_smoke_customer_is_reached_by_push_only() -> None:
    assert smoke_customer().channels == ["push"]


def test_smoke_faults_are_valid_reports_with_a_new_id_each_run() -> None:
    first, second = smoke_fault_id(), smoke_fault_id()
    assert first != second and first.startswith("smoke-")
    report = smoke_report("smoke-device-1", first, datetime.now(UTC))
    assert report.fault_id == first and report.code == "SMOKE-TEST"


def test_a_smoke_run_stops_at_the_first_failed_hop_and_keeps_skips_ok() -> None:
    run = SmokeRun()
    run.run("first", lambda: "fine")
    run.run("second", lambda: Skipped("nobody home"))

    def broken() -> None:
        raise HopFailed("no ticket after 1s")

    with pytest.raises(HopFailed, match="third"):
        run.run("third", broken)
    assert [h.as_json()["ok"] for h in run.hops] == [True, True, False]
    assert run.hops[1].as_json()["skipped"] == "nobody home"
    assert not run.ok and run.first_failure is run.hops[2]
