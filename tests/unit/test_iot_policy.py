"""The IoT policy -> Mosquitto ACL translation the local broker enforces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.local.broker_auth import IOT_DATA, IOT_RULES
from infra.local.children import LocalStackError
from infra.local.iot_policy import AclLine, UnmappablePolicy, device_acl, template_acl
from infra.local.stack import LocalStack
from infra.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
ARN = "arn:aws:iot:us-east-1:123456789012"
THING = "${iot:Connection.Thing.ThingName}"


def connect(resource: str = f"client/{THING}", **extra: Any) -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Action": "iot:Connect",
        "Resource": f"{ARN}:{resource}",
        "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
        **extra,
    }


def allow(action: str | list[str], *resources: str) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": [f"{ARN}:{r}" for r in resources]}


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_the_template_policy_confines_each_device_to_its_own_topics() -> None:
    # Given the template as deployed
    text = template_acl(load_template(ROOT / "template.yaml"), "us-east-1")
    # Then devices may write only their own dt/ topics and diagnostics answers, read only their
    # own cmd/ topics; the bridge reads what the topic rules select; iot-data writes requests
    device_part, _, users = text.partition(f"user {IOT_RULES}")
    # (through the broker, or straight to the rule named for each report: Basic Ingest)
    assert [line for line in device_part.splitlines() if line.startswith("pattern")] == [
        "pattern read cmd/aftercare/%u/#",
        "pattern write $aws/rules/aftercare_diagnostics_results_local/cmd/aftercare/%u/"
        "diagnostics/res",
        "pattern write $aws/rules/aftercare_fault_intake_local/dt/aftercare/%u/fault",
        "pattern write $aws/rules/aftercare_telemetry_local/dt/aftercare/%u/telemetry",
        "pattern write cmd/aftercare/%u/diagnostics/res",
        "pattern write dt/aftercare/%u/#",
    ]
    rules_part, _, data_part = users.partition(f"user {IOT_DATA}")
    assert sorted(rules_part.strip().splitlines()) == [
        "topic read $aws/rules/aftercare_diagnostics_results_local/#",
        "topic read $aws/rules/aftercare_fault_intake_local/#",
        "topic read $aws/rules/aftercare_telemetry_local/#",
        "topic read cmd/aftercare/+/diagnostics/res",
        "topic read dt/aftercare/+/fault",
        "topic read dt/aftercare/+/telemetry",
    ]
    # the functions' diagnostics requests and cancels, and the operator's smoke fault
    assert sorted(data_part.strip().splitlines()) == [
        "topic write cmd/aftercare/+/diagnostics/cancel",
        "topic write cmd/aftercare/+/diagnostics/req",
        "topic write dt/aftercare/+/fault",
    ]


def test_the_basic_ingest_rules_follow_the_stage() -> None:
    # Given a stack deployed with another stage
    text = template_acl(
        load_template(ROOT / "template.yaml"), "us-east-1", parameters={"Stage": "eu-prod"}
    )
    # Then a device may publish to that stage's rules only (the policy names them with !Ref),
    # and the bridge reads them
    assert "pattern write $aws/rules/aftercare_fault_intake_eu_prod/dt/aftercare/%u/fault" in text
    assert "topic read $aws/rules/aftercare_fault_intake_eu_prod/#" in text
    assert "_local/" not in text


def test_client_id_variable_maps_to_the_client_id_pattern() -> None:
    lines = device_acl(
        policy(
            connect("client/${iot:ClientId}", Condition=None),
            allow("iot:Publish", "topic/dt/app/${iot:ClientId}/fault"),
            allow(["iot:Subscribe"], "topicfilter/cmd/app/${iot:ClientId}/*"),
            allow("iot:Receive", "topic/cmd/app/${iot:ClientId}/*"),
        )
    )
    assert lines == [
        AclLine("pattern", "read", "cmd/app/%c/#"),
        AclLine("pattern", "write", "dt/app/%c/fault"),
    ]


@pytest.mark.parametrize(
    ("statements", "named"),
    [
        ([connect(), allow("iot:RetainPublish", f"topic/dt/{THING}/x")], "iot:RetainPublish"),
        ([connect(), allow("iot:*", f"topic/dt/{THING}/x")], "iot:*"),
        ([connect("client/*")], "client/*"),
        ([connect(), {**allow("iot:Publish", "topic/a"), "Effect": "Deny"}], "Deny"),
        (
            [connect(), {"Effect": "Allow", "NotAction": "iot:Publish", "Resource": "*"}],
            "NotAction",
        ),
        ([connect(), allow("iot:Publish", "topic/dt/dev-${iot:ClientId}/x")], "policy variable"),
        ([connect(), allow("iot:Publish", "topic/dt/${iot:Certificate.Id}/x")], "policy variable"),
        ([connect(), allow("iot:Publish", f"topic/dt/*/{THING}")], "wildcard"),
        ([connect(), allow("iot:Subscribe", f"topicfilter/cmd/{THING}/*")], "without iot:Receive"),
        ([connect(), allow("iot:Publish", f"topicfilter/dt/{THING}")], "topicfilter/"),
        ([connect(Condition={"StringEquals": {"iot:ClientId": "x"}})], "condition"),
        ([allow("iot:Publish", f"topic/dt/{THING}/x")], "no iot:Connect"),
    ],
)
def test_a_construct_the_broker_cannot_enforce_fails_naming_it(
    statements: list[dict[str, Any]], named: str
) -> None:
    with pytest.raises(UnmappablePolicy, match=named.replace("*", r"\*").replace("$", r"\$")):
        device_acl(policy(*statements))


def retain_granting_template(tmp_path: Path) -> Path:
    template = (ROOT / "template.yaml").read_text()
    patched = template.replace(
        "            Action: iot:Publish\n            Resource:\n              - !Sub",
        "            Action: [iot:Publish, iot:RetainPublish]\n"
        "            Resource:\n              - !Sub",
        1,
    )
    assert patched != template
    (tmp_path / "template.yaml").write_text(patched)
    return tmp_path / "template.yaml"


def test_an_unmappable_template_policy_names_the_resource(tmp_path: Path) -> None:
    # Given a template whose device policy grants retained publishes
    template = retain_granting_template(tmp_path)
    # Then the ACL cannot be generated, and the error names the policy and the action
    with pytest.raises(UnmappablePolicy, match=r"DeviceIoTPolicy: .*iot:RetainPublish"):
        template_acl(load_template(template), "us-east-1")


def test_the_local_stack_will_not_start_with_a_policy_its_broker_cannot_enforce(tmp_path: Path):
    stack = LocalStack(ROOT, tmp_path / "state", template_path=retain_granting_template(tmp_path))
    with pytest.raises(LocalStackError, match=r"cannot enforce DeviceIoTPolicy: .*RetainPublish"):
        stack.start()
    assert not (tmp_path / "state" / "local.json").exists()
