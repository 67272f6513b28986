"""Local stand-in for the AWS IoT rules engine, as a process: MQTT -> SQS/Lambda per the rules.

moto stores topic rules but never runs them, so the local stack runs this bridge instead
(`infra.local.mqtt_bridge`): it evaluates every rule whose topic filter matches a message
(`infra.local.iot_sql`) and runs the rule's actions (`infra.local.rule_actions`: SQS
SendMessage against moto, or an HTTP POST to a local Lambda worker), parking what cannot be
delivered (`infra.local.rule_engine`).

Process: ``python -m infra.local.iotrule --spec-file PATH`` (see `BridgeSpec`); prints ``READY``
on stdout once connected and subscribed; SIGTERM/SIGINT disconnect cleanly and exit 0.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from infra.local.bridge_spec import BridgeSpec
from infra.local.iot_sql import UnsupportedRuleSql
from infra.local.mqtt_bridge import Bridge
from infra.local.process import (
    EXIT_BAD_SPEC,
    EXIT_OK,
    EXIT_RUNTIME_FAILURE,
    aws_client,
    configure_logging,
    load_spec,
    local_aws_credentials,
    stop_on_signals,
)
from infra.local.profiling import profiled
from infra.local.rule_engine import DirectParking, Rule, build_rules

logger = logging.getLogger("infra.local.iotrule")

HEALTH_CHECK_INTERVAL_S = 1.0
STATS_INTERVAL_S = 30.0


def _direct_parking(spec: BridgeSpec) -> DirectParking | None:
    if spec.parked_table is None:
        return None
    ddb, s3 = (
        aws_client(service, region=spec.region, endpoint_url=spec.aws_endpoint_url)
        for service in ("dynamodb", "s3")
    )
    return DirectParking(spec.parked_table, ddb, spec.parked_bucket, s3)


def _serve(bridge: Bridge, stop: threading.Event) -> int:
    if not bridge.wait_ready():
        return EXIT_RUNTIME_FAILURE if bridge.fatal else EXIT_OK
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    last_logged: dict[str, int] = {}
    next_stats = time.monotonic() + STATS_INTERVAL_S
    while not stop.wait(HEALTH_CHECK_INTERVAL_S):
        if not bridge.healthy:
            logger.error("bridge unhealthy (%s); exiting", bridge.fatal or "worker thread died")
            return EXIT_RUNTIME_FAILURE
        if time.monotonic() >= next_stats:
            next_stats += STATS_INTERVAL_S
            last_logged = _log_counters(bridge.counters.snapshot(), last_logged)
    return EXIT_OK


def _log_counters(counts: dict[str, int], last_logged: dict[str, int]) -> dict[str, int]:
    if counts != last_logged:
        logger.info("counters %s", " ".join(f"{name}={value}" for name, value in counts.items()))
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local AWS IoT rules engine (MQTT -> SQS/Lambda)")
    parser.add_argument("--spec-file", type=Path, required=True)
    args = parser.parse_args(argv)
    configure_logging("iotrule")
    local_aws_credentials()
    try:
        spec = load_spec(BridgeSpec, args.spec_file)
        sqs = aws_client("sqs", region=spec.region, endpoint_url=spec.aws_endpoint_url)
        rules = build_rules(spec, sqs)
    except (OSError, ValidationError, UnsupportedRuleSql) as exc:
        sys.stderr.write(f"iotrule: cannot start from {args.spec_file}: {exc}\n")
        return EXIT_BAD_SPEC
    stop = threading.Event()
    stop_on_signals(stop, logger)
    with profiled("iot-rules", stop):  # with AFTERCARE_PROFILE_DIR set (`make profile`)
        return _run(spec, rules, stop)


def _run(spec: BridgeSpec, rules: list[Rule], stop: threading.Event) -> int:
    bridge = Bridge(spec, rules, stop, _direct_parking(spec))
    bridge.start()
    try:
        code = _serve(bridge, stop)
    finally:
        bridge.close()
        _log_counters(bridge.counters.snapshot(), {})
        logger.info("stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
