"""`local up --only`: a subset of the functions, and only the APIs they can serve."""

from __future__ import annotations

import pytest

from infra.local.children import LocalStackError
from infra.local.provision_context import ProvisionResult
from infra.local.stack import select_functions


def _result() -> ProvisionResult:
    return ProvisionResult(
        workers={"FaultIntakeFunction": {}, "ServiceApiFunction": {}},
        apis={"ServiceApi": {"routes": [{"function": "ServiceApiFunction"}]}},
        rules=[{"name": "FaultTopicRule"}],
    )


def test_only_the_selected_functions_run_and_apis_needing_others_are_left_out():
    selected = select_functions(_result(), frozenset({"FaultIntakeFunction"}))
    assert list(selected.workers) == ["FaultIntakeFunction"]
    assert selected.apis == {}
    assert selected.rules == [{"name": "FaultTopicRule"}]


def test_without_a_selection_everything_runs():
    result = _result()
    assert select_functions(result, None) is result


def test_an_unknown_function_is_named():
    with pytest.raises(LocalStackError, match="NoSuchFunction"):
        select_functions(_result(), frozenset({"NoSuchFunction"}))
