"""The local stack's expression caches (`infra.local.moto_speedups`): a write whose update or
condition expression was seen before behaves exactly as moto's own parse of it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.comparisons import ConditionExpressionParser, get_filter_expression
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]
from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

from infra.local import moto_speedups

UPDATES = [
    "SET due_ms = :due_ms, due_at = :due_at ADD tries :one",
    "ADD members :m SET due_queue = :queue",
    "SET #s = :s, timeline = list_append(if_not_exists(timeline, :empty), :event) REMOVE lock",
    "DELETE tags :t",
]
CONDITIONS = [
    ("attribute_not_exists(pk)", {}, {}),
    ("#s = :open AND version = :v", {"#s": "status"}, {":open": {"S": "open"}, ":v": {"N": "3"}}),
    (
        "(qty >= :n OR attribute_not_exists(qty)) AND NOT contains(tags, :t) AND size(title) < :l",
        {},
        {":n": {"N": "2"}, ":t": {"S": "x"}, ":l": {"N": "10"}},
    ),
    ("a BETWEEN :lo AND :hi AND b IN (:lo, :hi)", {}, {":lo": {"N": "1"}, ":hi": {"N": "9"}}),
]
ITEM = Item(
    DynamoType({"S": "pk"}),
    None,
    {
        "pk": {"S": "pk"},
        "status": {"S": "open"},
        "version": {"N": "3"},
        "qty": {"N": "5"},
        "tags": {"SS": ["a", "b"]},
        "title": {"S": "short"},
        "a": {"N": "4"},
        "b": {"N": "9"},
    },
)


def _shape(node: Any) -> Any:
    """An update AST as nested tuples: node type and children, leaves by value."""
    if isinstance(node, Node):
        return (node.type, [_shape(child) for child in node.children or []])
    return repr(node)


@pytest.fixture
def originals() -> Iterator[tuple[Any, Any]]:
    saved = (UpdateExpressionParser.make, ConditionExpressionParser._lex_condition_expression)
    yield moto_speedups._ORIGINAL_UPDATE_MAKE, moto_speedups._ORIGINAL_CONDITION_LEX
    UpdateExpressionParser.make, ConditionExpressionParser._lex_condition_expression = saved


@pytest.mark.parametrize("expression", UPDATES)
def test_a_cached_update_expression_is_the_tree_moto_parses(
    originals: tuple[Any, Any], expression: str
) -> None:
    # Given moto's own parse of an update expression
    expected = _shape(originals[0](expression))
    # When the speed-ups are on and the same text is parsed twice
    moto_speedups.apply()
    first, second = UpdateExpressionParser.make(expression), UpdateExpressionParser.make(expression)
    # Then both are moto's tree, and the second is the cached one
    assert _shape(first) == expected
    assert second is first


@pytest.mark.parametrize(("expression", "names", "values"), CONDITIONS)
def test_a_cached_condition_evaluates_as_moto_parses_it(
    originals: tuple[Any, Any], expression: str, names: dict[str, str], values: dict[str, Any]
) -> None:
    # Given moto's own verdict on a condition against an item
    ConditionExpressionParser._lex_condition_expression = originals[1]
    expected = get_filter_expression(expression, names, values).expr(ITEM)
    expected_tree = repr(get_filter_expression(expression, names, values))
    # When the speed-ups are on and the condition is parsed again, twice
    moto_speedups.apply()
    trees = [get_filter_expression(expression, names, values) for _ in range(2)]
    # Then the trees and verdicts are moto's
    assert [repr(tree) for tree in trees] == [expected_tree, expected_tree]
    assert [tree.expr(ITEM) for tree in trees] == [expected, expected]


def test_the_same_condition_text_with_other_values_uses_the_new_values(
    originals: tuple[Any, Any],
) -> None:
    # Given a condition text parsed once with one value
    moto_speedups.apply()
    text = "version = :v"
    assert get_filter_expression(text, {}, {":v": {"N": "3"}}).expr(ITEM) is True
    # When the same text comes with another value
    verdict = get_filter_expression(text, {}, {":v": {"N": "4"}}).expr(ITEM)
    # Then the new value is the one compared
    assert verdict is False


def test_an_invalid_expression_still_fails_every_time(originals: tuple[Any, Any]) -> None:
    # Given the speed-ups
    moto_speedups.apply()
    with mock_aws():
        client = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_table(
            TableName="t",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        )
        # When the same broken update is sent twice
        for _ in range(2):
            with pytest.raises(ClientError) as raised:
                client.update_item(
                    TableName="t",
                    Key={"pk": {"S": "a"}},
                    UpdateExpression="SET = :v",
                    ExpressionAttributeValues={":v": {"S": "x"}},
                )
            # Then it is refused each time, as moto refuses it
            assert raised.value.response["Error"]["Code"] == "ValidationException"
        # And a good update after it works, twice (the second from the cache)
        for n in ("1", "2"):
            client.update_item(
                TableName="t",
                Key={"pk": {"S": "a"}},
                UpdateExpression="SET v = :v ADD c :one",
                ConditionExpression="attribute_not_exists(v) OR v <> :v",
                ExpressionAttributeValues={":v": {"S": n}, ":one": {"N": "1"}},
            )
        item = client.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]
        assert item["c"] == {"N": "2"} and item["v"] == {"S": "2"}
