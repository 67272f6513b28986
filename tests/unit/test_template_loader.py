"""The template loader, the intrinsic resolver and the up-front checks of the local stack."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from infra.local.cfn_yaml import TemplateError, load_yaml
from infra.local.provision import NOT_EMULATED, SUPPORTED_TYPES, check_supported, provision
from infra.local.provision_context import AwsClients, ProvisionError
from infra.local.provision_events import rate_seconds
from infra.local.template import (
    NO_VALUE,
    Resolver,
    Template,
    UnresolvableReference,
    load_template,
    merge_globals,
    parameter_values,
    pseudo_parameters,
)
from infra.local.template_dependencies import dependency_order

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL_TEMPLATE = REPO_ROOT / "template.yaml"


def resolver(physical: dict[str, dict[str, Any]] | None = None, **params: Any) -> Resolver:
    return Resolver(
        {"Stage": "local", **params},
        pseudo_parameters("us-east-1", "aftercare-local"),
        physical or {},
        conditions={"IsLocal": {"Fn::Equals": [{"Ref": "Stage"}, "local"]}},
    )


def write_template(root: Path, body: str) -> Template:
    path = root / "template.yaml"
    path.write_text(textwrap.dedent(body))
    return load_template(path)


# ----------------------------------------------------------------------------- short-form tags


def test_every_short_form_tag_becomes_its_long_form() -> None:
    # Given a document using each CloudFormation short-form tag
    document = load_yaml(
        textwrap.dedent(
            """
            ref: !Ref Stage
            getatt_dotted: !GetAtt Queue.Arn
            getatt_nested: !GetAtt Db.Endpoint.Address
            getatt_list: !GetAtt [Queue, QueueName]
            sub: !Sub "x-${Stage}"
            sub_vars: !Sub ["${A}-b", {A: !Ref Stage}]
            join: !Join ["_", [a, b]]
            split: !Split ["-", "a-b"]
            select: !Select [0, [a, b]]
            if: !If [IsLocal, yes-value, no-value]
            equals: !Equals [!Ref Stage, local]
            not: !Not [!Condition IsLocal]
            and: !And [!Condition IsLocal, !Condition IsLocal]
            or: !Or [!Condition IsLocal, !Condition IsLocal]
            map: !FindInMap [M, k1, k2]
            b64: !Base64 text
            import: !ImportValue shared-vpc
            azs: !GetAZs ""
            version: 2010-09-09
            """
        )
    )
    # Then each is the long form CloudFormation documents
    assert document["ref"] == {"Ref": "Stage"}
    assert document["getatt_dotted"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert document["getatt_nested"] == {"Fn::GetAtt": ["Db", "Endpoint.Address"]}
    assert document["getatt_list"] == {"Fn::GetAtt": ["Queue", "QueueName"]}
    assert document["sub"] == {"Fn::Sub": "x-${Stage}"}
    assert document["sub_vars"] == {"Fn::Sub": ["${A}-b", {"A": {"Ref": "Stage"}}]}
    assert document["join"] == {"Fn::Join": ["_", ["a", "b"]]}
    assert document["split"] == {"Fn::Split": ["-", "a-b"]}
    assert document["select"] == {"Fn::Select": [0, ["a", "b"]]}
    assert document["if"] == {"Fn::If": ["IsLocal", "yes-value", "no-value"]}
    assert document["equals"] == {"Fn::Equals": [{"Ref": "Stage"}, "local"]}
    assert document["not"] == {"Fn::Not": [{"Condition": "IsLocal"}]}
    assert document["and"] == {"Fn::And": [{"Condition": "IsLocal"}, {"Condition": "IsLocal"}]}
    assert document["or"] == {"Fn::Or": [{"Condition": "IsLocal"}, {"Condition": "IsLocal"}]}
    assert document["map"] == {"Fn::FindInMap": ["M", "k1", "k2"]}
    assert document["b64"] == {"Fn::Base64": "text"}
    assert document["import"] == {"Fn::ImportValue": "shared-vpc"}
    assert document["azs"] == {"Fn::GetAZs": ""}
    # And dates stay strings, as in CloudFormation
    assert document["version"] == "2010-09-09"


def test_getatt_without_an_attribute_is_rejected() -> None:
    # When a !GetAtt names no attribute
    # Then loading fails and says what is wrong
    with pytest.raises(TemplateError, match=r"LogicalId\.Attribute"):
        load_yaml("x: !GetAtt JustAName")


# ----------------------------------------------------------------------------- resolver


def test_sub_substitutes_params_pseudo_params_attributes_and_keeps_escapes() -> None:
    # Given a created queue and the local stage
    resolve = resolver({"Queue": {"Ref": "http://q", "Arn": "arn:aws:sqs:us-east-1:1:q"}})
    # When a Sub mixes parameters, pseudo parameters, GetAtt, a Ref and an escape
    text = resolve.resolve(
        {
            "Fn::Sub": "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:"
            "client/${!iot:Connection.Thing.ThingName}/${Stage}/${Queue.Arn}/${Queue}"
        }
    )
    # Then each is substituted and ${!Literal} becomes ${Literal}
    assert text == (
        "arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"
        "/local/arn:aws:sqs:us-east-1:1:q/http://q"
    )


def test_sub_list_form_uses_its_own_variables() -> None:
    # Given the template's rule-name expression
    expression = {
        "Fn::Sub": [
            "aftercare_fault_intake_${StageUnderscore}",
            {"StageUnderscore": {"Fn::Join": ["_", {"Fn::Split": ["-", {"Ref": "Stage"}]}]}},
        ]
    }
    # When it is resolved for a stage with dashes
    name = resolver(Stage="eu-test-1").resolve(expression)
    # Then the variable is evaluated (Join of Split) before substitution
    assert name == "aftercare_fault_intake_eu_test_1"


def test_getatt_ref_join_split_select_resolve_against_created_resources() -> None:
    # Given a created table
    resolve = resolver({"Table": {"Ref": "tickets", "Arn": "arn:table", "StreamArn": "arn:s"}})
    # Then Ref, GetAtt, Join, Split and Select see its attributes
    assert resolve.resolve({"Ref": "Table"}) == "tickets"
    assert resolve.resolve({"Fn::GetAtt": ["Table", "StreamArn"]}) == "arn:s"
    assert resolve.resolve({"Fn::Join": [",", [{"Ref": "Table"}, "x"]]}) == "tickets,x"
    assert resolve.resolve({"Fn::Split": [":", {"Fn::GetAtt": ["Table", "Arn"]}]}) == [
        "arn",
        "table",
    ]
    assert resolve.resolve({"Fn::Select": [1, {"Fn::Split": [":", "a:b:c"]}]}) == "b"


def test_conditions_and_no_value() -> None:
    # Given the IsLocal condition holds for the local stage
    resolve = resolver()
    # Then Fn::If picks its branch and AWS::NoValue removes the property
    value = resolve.resolve(
        {
            "Name": {"Fn::If": ["IsLocal", "local-name", "cloud-name"]},
            "Optional": {"Fn::If": ["IsLocal", {"Ref": "AWS::NoValue"}, "x"]},
        }
    )
    assert value == {"Name": "local-name"}
    assert resolve.resolve({"Ref": "AWS::NoValue"}) is NO_VALUE


@pytest.mark.parametrize(
    ("expression", "named"),
    [
        ({"Fn::GetAtt": ["Missing", "Arn"]}, "!GetAtt Missing.Arn"),
        ({"Ref": "Missing"}, "!Ref Missing"),
        ({"Fn::GetAtt": ["Queue", "StreamArn"]}, "!GetAtt Queue.StreamArn"),
        ({"Fn::Sub": "${Queue.Nope}"}, "!GetAtt Queue.Nope"),
    ],
)
def test_unresolvable_reference_names_the_logical_id_and_attribute(
    expression: dict[str, Any], named: str
) -> None:
    # Given only a queue exists
    resolve = resolver({"Queue": {"Ref": "http://q", "Arn": "arn:q"}})
    # When something refers to what does not exist
    with pytest.raises(UnresolvableReference) as error:
        resolve.resolve(expression)
    # Then the error names the reference
    assert named in str(error.value)


def test_unsupported_intrinsic_fails_clearly() -> None:
    with pytest.raises(UnresolvableReference, match="Fn::ImportValue"):
        resolver().resolve({"Fn::ImportValue": "shared-vpc"})


# ----------------------------------------------------------------------------- parameters


def test_stage_is_local_and_parameters_are_checked(tmp_path: Path) -> None:
    # Given the real template's parameters
    template = load_template(REAL_TEMPLATE)
    # Then defaults apply and overrides win
    values = parameter_values(template, {"Stage": "local"})
    assert values["Stage"] == "local"
    assert (values["RepeatWindowDays"], values["LogLevel"]) == ("30", "INFO")
    assert set(values) == set(template.parameters)
    # And an override must pass the template's own constraints
    with pytest.raises(TemplateError, match="does not match"):
        parameter_values(template, {"Stage": "Bad_Stage"})
    with pytest.raises(TemplateError, match="outside"):
        parameter_values(template, {"RepeatWindowDays": "0"})
    with pytest.raises(TemplateError, match="not one of"):
        parameter_values(template, {"LogLevel": "TRACE"})
    with pytest.raises(TemplateError, match="unknown parameter"):
        parameter_values(template, {"Nope": "1"})


# ----------------------------------------------------------------------------- SAM Globals


def test_globals_merge_like_sam() -> None:
    # Given global function settings
    global_props = {
        "Runtime": "python3.12",
        "Layers": [{"Ref": "SharedLayer"}],
        "Environment": {"Variables": {"A": "global", "LEVEL": {"Ref": "LogLevel"}}},
    }
    # When a function overrides a primitive, an env key and adds a layer
    merged = merge_globals(
        global_props,
        {
            "Runtime": "python3.11",
            "Layers": ["arn:extra"],
            "Environment": {"Variables": {"LEVEL": "DEBUG", "B": "own"}},
        },
    )
    # Then primitives are replaced, maps merged (function wins), lists are global-first
    assert merged == {
        "Runtime": "python3.11",
        "Layers": [{"Ref": "SharedLayer"}, "arn:extra"],
        "Environment": {"Variables": {"A": "global", "LEVEL": "DEBUG", "B": "own"}},
    }
    # And the global input is untouched
    assert global_props["Layers"] == [{"Ref": "SharedLayer"}]


def test_real_template_functions_inherit_globals() -> None:
    # Given the real template
    template = load_template(REAL_TEMPLATE)
    intake = template.resources["FaultIntakeFunction"].properties
    # Then globals are merged into each function, keeping its own variables
    assert intake["Runtime"] == "python3.12"
    assert intake["Timeout"] == 30
    assert intake["Layers"] == [{"Ref": "SharedLayer"}]
    variables = intake["Environment"]["Variables"]
    assert variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    assert variables["TICKETS_TABLE"] == {"Ref": "TicketsTable"}


def test_globals_reject_what_sam_rejects(tmp_path: Path) -> None:
    # When Globals sets a property SAM refuses there
    body = """
        Globals:
          Function:
            Events: {}
        Resources: {}
        """
    # Then loading fails naming it
    with pytest.raises(TemplateError, match="Events"):
        write_template(tmp_path, body)


# ----------------------------------------------------------------------------- coverage checks


def test_real_template_types_are_all_handled_or_listed_as_not_emulated() -> None:
    # Given the real template
    template = load_template(REAL_TEMPLATE)
    # Then every resource type is either provisioned or knowingly not emulated
    unknown = {r.type for r in template.resources.values()} - SUPPORTED_TYPES - NOT_EMULATED
    assert unknown == set()
    check_supported(template)


def test_dependency_order_follows_references() -> None:
    # Given the real template
    order = [r.logical_id for r in dependency_order(load_template(REAL_TEMPLATE))]
    # Then everything comes after what it references
    assert order.index("FaultDeadLetterQueue") < order.index("FaultQueue")
    assert order.index("FaultQueue") < order.index("FaultIntakeFunction")
    assert order.index("SharedLayer") < order.index("FaultIntakeFunction")  # via Globals
    assert order.index("FaultRuleRole") < order.index("FaultTopicRule")


def test_circular_dependencies_are_reported(tmp_path: Path) -> None:
    template = write_template(
        tmp_path,
        """
        Resources:
          A: {Type: AWS::SQS::Queue, Properties: {QueueName: !GetAtt B.QueueName}}
          B: {Type: AWS::SQS::Queue, Properties: {QueueName: !GetAtt A.QueueName}}
        """,
    )
    with pytest.raises(TemplateError, match="circular"):
        dependency_order(template)


def test_unknown_resource_type_fails_naming_it(tmp_path: Path) -> None:
    # Given a template with a type the local stack cannot emulate
    template = write_template(
        tmp_path,
        """
        Resources:
          Stream:
            Type: AWS::Kinesis::Stream
            Properties: {ShardCount: 1}
        """,
    )
    # Then the up-front check fails naming the resource and its type
    with pytest.raises(ProvisionError, match=r"Stream \(AWS::Kinesis::Stream\)"):
        check_supported(template)


FUNCTION_TEMPLATE = """
    Resources:
      Worker:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: fn/
          Handler: handler.handler
          Runtime: python3.12
          {extra}
          Events:
            {events}
    """


def provision_offline(template: Template, **options: Any) -> Any:
    # A lone function needs no AWS call: the clients are never used.
    clients = AwsClients(dynamodb=None, sqs=None, sns=None, iot=None)  # type: ignore[arg-type]
    return provision(
        template, clients, endpoint_url="http://moto", sql_check=lambda _sql: None, **options
    )


@pytest.mark.parametrize(
    ("events", "message"),
    [
        (
            "Http: {Type: Api, Properties: {Path: /x, Method: get}}",
            r"Worker \(AWS::Serverless::Function\): event Http: event type 'Api'",
        ),
        (
            "Nightly: {Type: Schedule, Properties: {Schedule: 'cron(0 3 * * ? *)'}}",
            r"Worker .*schedule 'cron\(0 3 \* \* \? \*\)' is not supported",
        ),
        (
            "Q: {Type: SQS, Properties: {Queue: arn:aws:sqs:us-east-1:1:x, FilterCriteria: {}}}",
            r"Worker .*event Q \(SQS\): property \['FilterCriteria'\]",
        ),
    ],
)
def test_unsupported_function_events_fail_naming_them(
    tmp_path: Path, events: str, message: str
) -> None:
    # Given a function whose event the local stack cannot deliver
    (tmp_path / "fn").mkdir()
    template = write_template(tmp_path, FUNCTION_TEMPLATE.format(events=events, extra=""))
    # Then provisioning fails naming the function and what is unsupported
    with pytest.raises(ProvisionError, match=message):
        provision_offline(template)


def test_function_without_code_dir_fails(tmp_path: Path) -> None:
    template = write_template(tmp_path, FUNCTION_TEMPLATE.format(events="{}", extra=""))
    with pytest.raises(ProvisionError, match=r"Worker .*CodeUri 'fn/': no such directory"):
        provision_offline(template)


def test_unknown_function_property_fails(tmp_path: Path) -> None:
    (tmp_path / "fn").mkdir()
    body = FUNCTION_TEMPLATE.format(events="{}", extra="InlineCode: print(1)")
    template = write_template(tmp_path, body)
    with pytest.raises(ProvisionError, match=r"Worker .*\['InlineCode'\] is not supported"):
        provision_offline(template)


def test_schedule_rates_become_seconds(tmp_path: Path) -> None:
    # Given a function on a rate schedule
    (tmp_path / "fn").mkdir()
    events = "Tick: {Type: Schedule, Properties: {Schedule: rate(5 minutes)}}"
    result = provision_offline(
        write_template(tmp_path, FUNCTION_TEMPLATE.format(events=events, extra=""))
    )
    # Then its worker gets the period in seconds, and the defaults SAM would apply
    spec = result.workers["Worker"]
    assert spec["schedule_sources"] == [{"event_id": "Tick", "rate_seconds": 300}]
    assert spec["function_name"] == "aftercare-local-Worker"
    assert (spec["timeout"], spec["memory_size"]) == (3, 128)
    assert [rate_seconds(r) for r in ("rate(1 minute)", "rate(2 hours)", "rate(1 day)")] == [
        60,
        7200,
        86400,
    ]


def test_a_local_schedule_override_replaces_the_template_rate(tmp_path: Path) -> None:
    # Given a function on a rate EventBridge accepts (at least a minute)
    (tmp_path / "fn").mkdir()
    events = "Tick: {Type: Schedule, Properties: {Schedule: rate(1 minute)}}"
    template = write_template(tmp_path, FUNCTION_TEMPLATE.format(events=events, extra=""))
    # When the local stack is asked to run it every half second
    result = provision_offline(template, schedule_seconds={"Worker": 0.5})
    # Then its worker ticks that often, without the template accepting sub-minute rates
    assert result.workers["Worker"]["schedule_sources"] == [
        {"event_id": "Tick", "rate_seconds": 0.5}
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"Nobody": 1.0}, r"\['Nobody'\]: not a scheduled function"), ({"Worker": 0}, "> 0")],
)
def test_schedule_overrides_must_name_a_scheduled_function(
    tmp_path: Path, overrides: dict[str, float], message: str
) -> None:
    (tmp_path / "fn").mkdir()
    events = "Tick: {Type: Schedule, Properties: {Schedule: rate(1 minute)}}"
    template = write_template(tmp_path, FUNCTION_TEMPLATE.format(events=events, extra=""))
    with pytest.raises(ProvisionError, match=message):
        provision_offline(template, schedule_seconds=overrides)


@pytest.mark.parametrize(
    ("rate", "accepted"),
    [
        ("rate(1 minute)", True),
        ("rate(5 minutes)", True),
        ("rate(1 hour)", True),
        ("rate(12 hours)", True),
        ("rate(1 day)", True),
        ("rate(10 days)", True),
        ("rate(1 minutes)", False),
        ("rate(5 minute)", False),
        ("rate(30 seconds)", False),
        ("rate(1 second)", False),
        ("rate(0 minutes)", False),
        ("rate(05 minutes)", False),
        ("cron(0 3 * * ? *)", False),
    ],
)
def test_sweep_rate_parameters_accept_only_what_eventbridge_accepts(
    rate: str, accepted: bool
) -> None:
    # Given the real template's sweep-rate parameters
    template = load_template(REAL_TEMPLATE)
    for name in ("HoldSweepRate", "NotificationSweepRate", "DiagnosticsSweepRate"):
        # Then a rate is accepted exactly when EventBridge would accept it
        if accepted:
            assert parameter_values(template, {name: rate})[name] == rate
        else:
            with pytest.raises(TemplateError, match=name):
                parameter_values(template, {name: rate})
