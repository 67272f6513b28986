"""AWS IoT Basic Ingest topics, for the local rules engine and the broker's ACL.

A device publishes to `$aws/rules/<rule name>/<topic>` and the message goes to that one rule,
past the message broker (no IoT Core messaging charge); the rule sees `<topic>` (topic() and
topic(k) never show the prefix) and its FROM filter is not applied. In AWS nothing can subscribe
to these topics; locally the rules bridge subscribes to them, as the rules engine's stand-in.
"""

from __future__ import annotations

from collections.abc import Mapping

BASIC_INGEST_PREFIX = "$aws/rules/"


def basic_ingest_filter(rule_name: str) -> str:
    """The topic filter the local bridge subscribes to for `rule_name`'s Basic Ingest topics
    (in AWS nothing can subscribe to them: the rules engine takes them directly)."""
    return f"{BASIC_INGEST_PREFIX}{rule_name}/#"


def basic_ingest_target(topic: str) -> tuple[str, str] | None:
    """(rule name, the topic the rule sees) for a Basic Ingest topic, else None."""
    if not topic.startswith(BASIC_INGEST_PREFIX):
        return None
    rule_name, _, rest = topic.removeprefix(BASIC_INGEST_PREFIX).partition("/")
    if not rule_name or not rest:
        return None
    return rule_name, rest


# The template's topic rules a device reports to by Basic Ingest (`devices.config.IngestRules`).
INGEST_RULES: dict[str, str] = {
    "fault": "FaultTopicRule",
    "telemetry": "TelemetryTopicRule",
    "diagnostics_result": "DiagnosticsTopicRule",
}


def ingest_rules(resources: Mapping[str, str]) -> dict[str, str] | None:
    """The rule names a device of this stack publishes to (its `ingest_rules`), from the stack's
    physical resource names by logical id; None when the stack lacks one of the rules."""
    if any(logical_id not in resources for logical_id in INGEST_RULES.values()):
        return None
    return {field: resources[logical_id] for field, logical_id in INGEST_RULES.items()}
