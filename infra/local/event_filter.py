"""Lambda's event filtering (FilterCriteria): EventBridge-style patterns on a record's JSON.

`check_pattern` refuses what Lambda would refuse (and the operators not emulated locally);
`matches_any` is the filter an event source applies before a record reaches a batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class FilterPatternError(ValueError):
    """A filter pattern Lambda would refuse (or one with an operator not emulated locally)."""


_MISSING: Any = object()
_NUMERIC_OPERATORS = frozenset({"<", "<=", "=", ">", ">="})
_STRING_OPERATORS = frozenset({"prefix", "suffix", "equals-ignore-case"})
_OPERATORS = _STRING_OPERATORS | {"exists", "anything-but", "numeric"}


def check_pattern(pattern: object, path: str = "") -> None:
    """Raise `FilterPatternError` unless `pattern` is a pattern the local matcher evaluates."""
    if not isinstance(pattern, Mapping) or not pattern:
        raise FilterPatternError(f"{path or 'pattern'}: expected a non-empty JSON object")
    for key, rules in pattern.items():
        where = f"{path}.{key}" if path else str(key)
        if isinstance(rules, Mapping):
            check_pattern(rules, where)
        elif isinstance(rules, list) and rules:
            for rule in rules:
                _check_rule(rule, where)
        else:
            raise FilterPatternError(f"{where}: expected an object or a non-empty array of rules")


def _check_rule(rule: object, where: str) -> None:
    if _is_scalar(rule):
        return
    if not isinstance(rule, Mapping) or len(rule) != 1:
        raise FilterPatternError(f"{where}: a rule is a value or a one-key operator object")
    operator, operand = next(iter(rule.items()))
    if operator not in _OPERATORS:
        raise FilterPatternError(f"{where}: operator {operator!r} is not supported locally")
    if operator in _STRING_OPERATORS and not isinstance(operand, str):
        raise FilterPatternError(f"{where}: {operator} takes a string")
    if operator == "exists" and not isinstance(operand, bool):
        raise FilterPatternError(f"{where}: exists takes true or false")
    if operator == "numeric":
        _check_numeric(operand, where)
    if operator == "anything-but":
        _check_anything_but(operand, where)


def _check_numeric(operand: object, where: str) -> None:
    pairs = list(operand) if isinstance(operand, list) else []
    valid = len(pairs) in (2, 4) and all(
        pairs[index] in _NUMERIC_OPERATORS and _is_number(pairs[index + 1])
        for index in range(0, len(pairs), 2)
    )
    if not valid:
        raise FilterPatternError(f"{where}: numeric takes [op, number] or [op, number, op, number]")


def _check_anything_but(operand: object, where: str) -> None:
    if isinstance(operand, Mapping):
        if len(operand) != 1 or next(iter(operand)) not in _STRING_OPERATORS:
            raise FilterPatternError(f"{where}: anything-but takes values, prefix or suffix")
        return
    values = operand if isinstance(operand, list) else [operand]
    if not values or not all(_is_scalar(value) and value is not None for value in values):
        raise FilterPatternError(f"{where}: anything-but takes a value or a list of values")


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def matches(pattern: Mapping[str, Any], event: object) -> bool:
    """Whether `event` (a JSON document) matches `pattern` (Lambda / EventBridge semantics)."""
    fields = event if isinstance(event, Mapping) else {}
    return all(_field_matches(rules, fields.get(key, _MISSING)) for key, rules in pattern.items())


def matches_any(patterns: Sequence[Mapping[str, Any]], event: object) -> bool:
    """Lambda's filter criteria: no pattern lets everything through, else any one must match."""
    return not patterns or any(matches(pattern, event) for pattern in patterns)


def _field_matches(rules: Any, value: Any) -> bool:
    if isinstance(rules, Mapping):
        if isinstance(value, list):
            return any(matches(rules, item) for item in value)
        return matches(rules, value if isinstance(value, Mapping) else {})
    return any(_rule_matches(rule, value) for rule in rules)


def _rule_matches(rule: Any, value: Any) -> bool:
    if isinstance(rule, Mapping) and "exists" in rule:
        return (value is not _MISSING) == rule["exists"]
    if value is _MISSING:
        return False
    if isinstance(value, list):  # an array matches when any of its elements does
        return any(_rule_matches(rule, item) for item in value)
    if isinstance(rule, Mapping):
        return _operator_matches(*next(iter(rule.items())), value)
    return _equal(rule, value)


def _operator_matches(operator: str, operand: Any, value: Any) -> bool:
    if operator in _STRING_OPERATORS:
        return isinstance(value, str) and _string_matches(operator, operand, value)
    if operator == "numeric":
        return _is_number(value) and _numeric_matches(operand, value)
    return not _anything_but_excludes(operand, value)  # anything-but


def _string_matches(operator: str, operand: str, value: str) -> bool:
    if operator == "prefix":
        return value.startswith(operand)
    if operator == "suffix":
        return value.endswith(operand)
    return value.casefold() == operand.casefold()  # equals-ignore-case


def _numeric_matches(operand: Sequence[Any], value: float) -> bool:
    checks = {
        "<": lambda bound: value < bound,
        "<=": lambda bound: value <= bound,
        "=": lambda bound: value == bound,
        ">": lambda bound: value > bound,
        ">=": lambda bound: value >= bound,
    }
    return all(checks[operand[index]](operand[index + 1]) for index in range(0, len(operand), 2))


def _anything_but_excludes(operand: Any, value: Any) -> bool:
    if isinstance(operand, Mapping):
        operator, text = next(iter(operand.items()))
        return isinstance(value, str) and _string_matches(operator, text, value)
    excluded = operand if isinstance(operand, list) else [operand]
    return any(_equal(item, value) for item in excluded)


def _equal(rule: Any, value: Any) -> bool:
    if isinstance(rule, bool) or isinstance(value, bool) or rule is None or value is None:
        return type(rule) is type(value) and rule == value
    if _is_number(rule) and _is_number(value):
        return bool(rule == value)
    return type(rule) is type(value) and rule == value
