"""The moto server's periodic request statistics: wall time under the lock and CPU apart."""

from __future__ import annotations

import logging

import pytest

from infra.local.motoserver import RequestStats


def test_flush_logs_busy_and_cpu_share_per_operation(caplog: pytest.LogCaptureFixture) -> None:
    # Given requests recorded with their wall time under the lock and the CPU they used
    stats = RequestStats(every_s=3600)
    stats.record("GetRecords", 0.004, 0.001)
    stats.record("GetRecords", 0.006, 0.001)
    stats.record("PutItem", 0.002, 0.002)
    # When the statistics are flushed
    with caplog.at_level(logging.INFO, logger="infra.local.motoserver"):
        stats.flush()
    # Then one line gives the requests, both shares, and each operation's count and wall time
    (line,) = [record.getMessage() for record in caplog.records]
    assert "3 requests, busy" in line and "(cpu " in line
    assert "GetRecords 2x/0.01s, PutItem 1x/0.00s" in line


def test_flush_with_nothing_served_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="infra.local.motoserver"):
        RequestStats(every_s=3600).flush()
    assert caplog.records == []
