"""Lambda event filtering (FilterCriteria patterns) as the local stream sources apply it."""

from __future__ import annotations

import json

import pytest

from infra.local.event_filter import FilterPatternError, check_pattern, matches, matches_any

RECORD = {
    "eventID": "7de3041dd709b024af6f29e4fa13d34c",
    "eventName": "MODIFY",
    "eventVersion": "1.1",
    "eventSource": "aws:dynamodb",
    "awsRegion": "us-east-1",
    "dynamodb": {
        "ApproximateCreationDateTime": 1700000000.0,
        "Keys": {"pk": {"S": "STOCK#eu-west#FLT-001"}, "sk": {"S": "META"}},
        "NewImage": {
            "pk": {"S": "STOCK#eu-west#FLT-001"},
            "sk": {"S": "META"},
            "on_hand": {"N": "3"},
            "tags": {"SS": ["fragile", "heavy"]},
            "active": {"BOOL": True},
        },
        "OldImage": {"pk": {"S": "STOCK#eu-west#FLT-001"}, "sk": {"S": "META"}},
        "SequenceNumber": "1100000000017454423010",
        "SizeBytes": 120,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    },
    "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2024-01-01T00:00:00",
    "score": 7,
    "note": None,
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"eventName": ["MODIFY"]}, True),
        ({"eventName": ["INSERT", "MODIFY"]}, True),
        ({"eventName": ["INSERT"]}, False),
        ({"dynamodb": {"NewImage": {"sk": {"S": ["META"]}}}}, True),
        ({"dynamodb": {"NewImage": {"sk": {"S": ["EVENT"]}}}}, False),
        ({"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "STOCK#"}]}}}}, True),
        ({"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "TICKET#"}]}}}}, False),
        ({"dynamodb": {"Keys": {"pk": {"S": [{"suffix": "FLT-001"}]}}}}, True),
        ({"eventName": [{"equals-ignore-case": "modify"}]}, True),
    ],
)
def test_exact_prefix_and_suffix_rules(pattern, expected):
    # Given a stream record and a pattern
    # When it is matched
    # Then equality, prefix and suffix rules decide as Lambda does
    assert matches(pattern, RECORD) is expected


def test_every_key_of_a_pattern_must_match():
    # Given a pattern on the event name and on an attribute
    both = {"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"sk": {"S": ["META"]}}}}
    one_wrong = {"eventName": ["REMOVE"], "dynamodb": {"NewImage": {"sk": {"S": ["META"]}}}}
    # When matched / Then all keys must match, not any
    assert matches(both, RECORD)
    assert not matches(one_wrong, RECORD)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"dynamodb": {"NewImage": {"on_hand": {"N": [{"exists": True}]}}}}, True),
        ({"dynamodb": {"NewImage": {"on_hand": {"N": [{"exists": False}]}}}}, False),
        ({"dynamodb": {"NewImage": {"missing": {"S": [{"exists": False}]}}}}, True),
        ({"dynamodb": {"NewImage": {"missing": {"S": [{"exists": True}]}}}}, False),
        ({"dynamodb": {"OldImage": {"on_hand": {"N": [{"exists": False}]}}}}, True),
        ({"nothing": {"here": [{"exists": False}]}}, True),  # a missing parent: missing leaf
        ({"note": [{"exists": True}]}, True),  # present, even though null
        ({"note": [None]}, True),
        ({"eventName": [None]}, False),
    ],
)
def test_exists_and_null(pattern, expected):
    assert matches(pattern, RECORD) is expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"eventName": [{"anything-but": ["INSERT", "REMOVE"]}]}, True),
        ({"eventName": [{"anything-but": "MODIFY"}]}, False),
        ({"eventName": [{"anything-but": {"prefix": "MOD"}}]}, False),
        ({"eventName": [{"anything-but": {"prefix": "INS"}}]}, True),
        ({"missing": [{"anything-but": ["x"]}]}, False),  # anything-but needs the field
        ({"score": [{"anything-but": [7]}]}, False),
        ({"score": [{"anything-but": [7.5]}]}, True),
    ],
)
def test_anything_but(pattern, expected):
    assert matches(pattern, RECORD) is expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"score": [{"numeric": [">", 0]}]}, True),
        ({"score": [{"numeric": [">", 0, "<=", 7]}]}, True),
        ({"score": [{"numeric": [">", 0, "<", 7]}]}, False),
        ({"score": [{"numeric": ["=", 7.0]}]}, True),
        ({"score": [7.0]}, True),  # numbers compare as numbers
        ({"score": ["7"]}, False),  # ...but never as strings
        # DynamoDB's N values are strings in the record, so numeric rules do not apply to them
        ({"dynamodb": {"NewImage": {"on_hand": {"N": [{"numeric": [">", 0]}]}}}}, False),
        ({"dynamodb": {"NewImage": {"on_hand": {"N": ["3"]}}}}, True),
    ],
)
def test_numeric_rules(pattern, expected):
    assert matches(pattern, RECORD) is expected


def test_booleans_are_not_numbers():
    # Given a BOOL attribute holding true
    # When matched against true and against 1
    # Then only true matches
    assert matches({"dynamodb": {"NewImage": {"active": {"BOOL": [True]}}}}, RECORD)
    assert not matches({"dynamodb": {"NewImage": {"active": {"BOOL": [1]}}}}, RECORD)


def test_an_array_value_matches_when_any_element_does():
    assert matches({"dynamodb": {"NewImage": {"tags": {"SS": ["heavy"]}}}}, RECORD)
    assert not matches({"dynamodb": {"NewImage": {"tags": {"SS": ["light"]}}}}, RECORD)


def test_filters_are_alternatives_and_none_lets_everything_through():
    # Given two filters, one of which matches
    inserts = {"eventName": ["INSERT"]}
    modifies = {"eventName": ["MODIFY"]}
    # When matched / Then any filter is enough; no filter at all passes every record
    assert matches_any([inserts, modifies], RECORD)
    assert not matches_any([inserts], RECORD)
    assert matches_any([], RECORD)


def test_the_template_filters_parse_and_match():
    # Given the stock watcher's filter as the template writes it (a JSON string)
    pattern = json.loads(
        '{"eventName": ["MODIFY"], "dynamodb": {"Keys": {"pk": {"S": [{"prefix": "STOCK#"}]}}}}'
    )
    # When it is checked and matched
    check_pattern(pattern)
    # Then it selects modified stock items
    assert matches(pattern, RECORD)


@pytest.mark.parametrize(
    "pattern",
    [
        {},
        [],
        {"eventName": "MODIFY"},  # leaves must be arrays
        {"eventName": []},
        {"eventName": [{"wildcard": "MOD*"}]},  # not emulated locally: refused, not ignored
        {"eventName": [{"prefix": 1}]},
        {"eventName": [{"exists": "yes"}]},
        {"score": [{"numeric": [">"]}]},
        {"score": [{"numeric": ["~", 1]}]},
        {"score": [{"numeric": [">", "1"]}]},
        {"eventName": [{"anything-but": []}]},
        {"eventName": [{"anything-but": {"wildcard": "x"}}]},
        {"eventName": [{"prefix": "A", "suffix": "B"}]},
        {"eventName": [["nested"]]},
    ],
)
def test_invalid_patterns_are_refused(pattern):
    # Given a pattern Lambda would refuse, or one the local matcher does not evaluate
    # When checked / Then it is an error, named by its path
    with pytest.raises(FilterPatternError):
        check_pattern(pattern)
