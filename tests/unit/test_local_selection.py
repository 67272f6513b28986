"""`local up --only`: a subset of the functions, and only the APIs they can serve."""

from __future__ import annotations

import pytest

from infra.local.provision import ProvisionResult
from infra.local.stack import LocalStack, LocalStackError


def _result() -> ProvisionResult:
    return ProvisionResult(
        workers={"FaultIntakeFunction": {}, "ServiceApiFunction": {}},
        apis={"ServiceApi": {"routes": [{"function": "ServiceApiFunction"}]}},
        rules=[{"name": "FaultTopicRule"}],
    )


def test_only_the_selected_functions_run_and_apis_needing_others_are_left_out(tmp_path):
    stack = LocalStack(tmp_path, tmp_path / "state", only_functions=["FaultIntakeFunction"])
    selected = stack._selected(_result())
    assert list(selected.workers) == ["FaultIntakeFunction"]
    assert selected.apis == {}
    assert selected.rules == [{"name": "FaultTopicRule"}]


def test_without_a_selection_everything_runs(tmp_path):
    result = _result()
    assert LocalStack(tmp_path, tmp_path / "state")._selected(result) is result


def test_an_unknown_function_is_named(tmp_path):
    stack = LocalStack(tmp_path, tmp_path / "state", only_functions=["NoSuchFunction"])
    with pytest.raises(LocalStackError, match="NoSuchFunction"):
        stack._selected(_result())
