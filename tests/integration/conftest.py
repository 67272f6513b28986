"""Integration fixtures: a private, restartable Mosquitto per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.mosquitto_fixture import MOSQUITTO_BINARY, MosquittoBroker


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A Mosquitto on a free loopback port with persistence; ``.stop()``/``.start()`` restart it
    on the same port and persistence dir. ``.url`` is ``mqtt://127.0.0.1:PORT``."""
    if not MOSQUITTO_BINARY.exists():
        pytest.fail(f"{MOSQUITTO_BINARY} is not installed: run `make setup`")
    broker = MosquittoBroker(workdir=tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()
