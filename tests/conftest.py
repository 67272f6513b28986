"""Suite-wide settings, applied before any test module imports a handler."""

import os

import pytest

from tests.fakes.aws import use_fake_credentials

# Handlers share one Metrics object (aftercare.observability), built at first import: the
# template sets this variable for every function, so the whole suite does too, whatever order
# the modules import in.
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Aftercare")


@pytest.fixture
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's credentials step (tests/fakes/aws.py), undone after the test."""
    use_fake_credentials(monkeypatch)
