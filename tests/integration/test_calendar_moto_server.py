"""The calendar's state machine again, on the local stack's own moto server (one request at a
time, with the stack's replacement of moto's transactions, `infra/local/moto_patches.py`):
the no-overlap conditions hold there as they do on DynamoDB, so what the local stack shows
about booking is what AWS would do."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings

import tests.unit.test_calendar_state_machine as calendar_machine
from tests.fakes.aws import moto_clients


class ServerMachine(calendar_machine.CalendarMachine):
    endpoint: ClassVar[str] = ""

    def connect(self) -> Any:
        (ddb,) = moto_clients(self.endpoint, "dynamodb")
        return ddb


def test_no_double_booking_on_the_local_stacks_moto_server(moto_url: str) -> None:
    ServerMachine.endpoint = moto_url
    case = ServerMachine.TestCase
    case.settings = settings(
        max_examples=8,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    case().runTest()


pytestmark = pytest.mark.usefixtures("fake_aws_credentials")
