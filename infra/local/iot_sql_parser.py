"""The IoT SQL parser: rule SQL text in, a `ParsedRule` out (the subset in `infra.local.iot_sql`).

Anything outside the subset raises `UnsupportedRuleSql` naming the construct and its position.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from infra.local.iot_sql import (
    Base64PayloadExpr,
    Comparison,
    Expression,
    FieldExpr,
    NamedItem,
    NewUuidExpr,
    ParsedRule,
    SelectItem,
    SqlLiteral,
    StarItem,
    TimestampExpr,
    TopicExpr,
    UnsupportedRuleSql,
)


class _Kind(Enum):
    WORD = "word"
    STRING = "string"
    NUMBER = "number"
    SYMBOL = "symbol"
    END = "end"


@dataclass(frozen=True)
class _Token:
    kind: _Kind
    text: str
    position: int

    def is_word(self, *words: str) -> bool:
        return self.kind is _Kind.WORD and self.text.upper() in words

    def is_symbol(self, *symbols: str) -> bool:
        return self.kind is _Kind.SYMBOL and self.text in symbols

    def describe(self) -> str:
        if self.kind is _Kind.END:
            return "end of SQL"
        return self.text if self.kind is _Kind.STRING else f"'{self.text}'"


_TOKEN_PATTERN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<string>'[^']*')
    | (?P<symbol><>|!=|<=|>=|\|\||[(),.*=<>+\-/%])
    """,
    re.VERBOSE,
)

_BAD_CHARACTERS = {
    "'": "unterminated string literal",
    '"': "double-quoted names and strings are not supported; quote literals with '...'",
    "[": "array indexing ([...]) is not supported",
    "{": "object literals ({...}) are not supported",
    "$": "substitution templates (${...}) are not supported",
    "@": "variables (@name) are not supported",
}


def _tokenize(sql: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(sql):
        match = _TOKEN_PATTERN.match(sql, position)
        if match is None:
            character = sql[position]
            reason = _BAD_CHARACTERS.get(character, f"character {character!r} is not supported")
            raise UnsupportedRuleSql(f"{reason} (at position {position})")
        kind = match.lastgroup
        if kind is not None and kind != "space":
            tokens.append(_Token(_Kind(kind), match.group(), position))
        position = match.end()
    tokens.append(_Token(_Kind.END, "", len(sql)))
    return tokens


_KEYWORDS = frozenset({"SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT"})

_UNSUPPORTED_WORDS = {
    "SET": "the SET clause (variables) is not supported",
    "VALUE": "SELECT VALUE is not supported",
    "CASE": "CASE expressions are not supported",
    "GROUP": "clause GROUP BY is not supported",
    "ORDER": "clause ORDER BY is not supported",
    "HAVING": "clause HAVING is not supported",
    "LIMIT": "clause LIMIT is not supported",
    "JOIN": "clause JOIN is not supported",
    "UNION": "clause UNION is not supported",
    "OR": "operator OR is not supported (only AND may combine conditions)",
    "NOT": "operator NOT is not supported (use <>)",
    "IN": "operator IN is not supported (only = and <>)",
    "LIKE": "operator LIKE is not supported (only = and <>)",
    "IS": "operator IS is not supported (only = and <>)",
    "BETWEEN": "operator BETWEEN is not supported (only = and <>)",
    "TRUE": "boolean literal TRUE is not supported (compare with a 'string' or a number)",
    "FALSE": "boolean literal FALSE is not supported (compare with a 'string' or a number)",
    "NULL": "NULL is not supported (compare with a 'string' or a number)",
}

_RESERVED_WORDS = _KEYWORDS | frozenset(_UNSUPPORTED_WORDS)

_OPERATOR_SYMBOLS = frozenset({"+", "-", "*", "/", "%", "||", "<", ">", "<=", ">=", "!="})

_SUPPORTED_FUNCTIONS = "encode(*, 'base64'), newuuid(), timestamp(), topic(), topic(n)"


def _unexpected(token: _Token, expected: str) -> UnsupportedRuleSql:
    upper = token.text.upper()
    if token.kind is _Kind.WORD and upper in _UNSUPPORTED_WORDS:
        reason = _UNSUPPORTED_WORDS[upper]
    elif token.kind is _Kind.SYMBOL and token.text in _OPERATOR_SYMBOLS:
        reason = f"operator '{token.text}' is not supported"
    else:
        reason = f"expected {expected}, found {token.describe()}"
    return UnsupportedRuleSql(f"{reason} (at position {token.position})")


class _Parser:
    def __init__(self, sql: str) -> None:
        if re.match(r"\s*SET\b", sql, re.IGNORECASE):  # before tokenizing its @variables
            raise UnsupportedRuleSql(f"{_UNSUPPORTED_WORDS['SET']} (at position 0)")
        self._sql = sql
        self._tokens = _tokenize(sql)
        self._index = 0

    # -- token helpers ---------------------------------------------------------------------
    def _peek(self, offset: int = 0) -> _Token:
        return self._tokens[min(self._index + offset, len(self._tokens) - 1)]

    def _next(self) -> _Token:
        token = self._peek()
        self._index = min(self._index + 1, len(self._tokens) - 1)
        return token

    def _expect_symbol(self, symbol: str, expected: str) -> None:
        token = self._next()
        if not token.is_symbol(symbol):
            raise _unexpected(token, expected)

    def _expect_word(self, word: str, expected: str) -> None:
        token = self._next()
        if not token.is_word(word):
            raise _unexpected(token, expected)

    def _at_call(self) -> bool:
        return self._peek().kind is _Kind.WORD and self._peek(1).is_symbol("(")

    # -- statement -------------------------------------------------------------------------
    def parse(self) -> ParsedRule:
        self._reject_subqueries()
        self._expect_word("SELECT", "SELECT at the start of the rule")
        items = self._select_list()
        self._expect_word("FROM", "',' or FROM after a select item")
        topic_filter = self._topic_filter()
        conditions = self._where() if self._peek().is_word("WHERE") else ()
        token = self._peek()
        if token.kind is not _Kind.END:
            raise _unexpected(token, "WHERE, AND or the end of the SQL")
        return ParsedRule(self._sql, topic_filter, items, conditions)

    def _reject_subqueries(self) -> None:
        selects = [token for token in self._tokens if token.is_word("SELECT")]
        if len(selects) > 1:
            raise UnsupportedRuleSql(
                f"nested SELECT (subquery) is not supported (at position {selects[1].position})"
            )

    # -- SELECT ----------------------------------------------------------------------------
    def _select_list(self) -> tuple[SelectItem, ...]:
        items = [self._select_item()]
        while self._peek().is_symbol(","):
            self._next()
            items.append(self._select_item())
        stars = [item for item in items if isinstance(item, StarItem)]
        if len(stars) > 1:
            raise UnsupportedRuleSql("* may appear only once in SELECT")
        return tuple(items)

    def _select_item(self) -> SelectItem:
        token = self._peek()
        if token.is_symbol("*"):
            self._next()
            return StarItem()
        if self._at_call():
            start = token.position
            expression = self._function_call()
            return NamedItem(
                self._alias(self._sql[start : self._peek().position].strip()), expression
            )
        if token.kind is _Kind.WORD and token.text.upper() not in _RESERVED_WORDS:
            raise UnsupportedRuleSql(
                f"selecting payload fields ({token.text}) is not supported; select * or one "
                f"of {_SUPPORTED_FUNCTIONS} AS a name (at position {token.position})"
            )
        if token.kind in (_Kind.STRING, _Kind.NUMBER):
            raise UnsupportedRuleSql(
                f"literal values in SELECT are not supported (at position {token.position})"
            )
        raise _unexpected(token, "a select item")

    def _alias(self, expression_text: str) -> str:
        token = self._peek()
        if not token.is_word("AS"):
            if token.kind is _Kind.END or token.is_symbol(",") or token.is_word("FROM"):
                raise UnsupportedRuleSql(
                    f"{expression_text} needs a name: write {expression_text} AS name "
                    f"(at position {token.position})"
                )
            raise _unexpected(token, f"AS after {expression_text}")
        self._next()
        name = self._next()
        if name.kind is not _Kind.WORD or name.text.upper() in _KEYWORDS:
            raise _unexpected(name, "a name after AS")
        return name.text

    # -- functions -------------------------------------------------------------------------
    def _function_call(self) -> Expression:
        name = self._next()
        self._next()  # "("
        function = name.text.lower()
        if function == "clientid":
            raise UnsupportedRuleSql(
                "clientid() cannot be emulated: MQTT subscribers do not learn the publisher's "
                f"client id (at position {name.position})"
            )
        argument_parsers: dict[str, Callable[[str], Expression]] = {
            "topic": self._topic_arguments,
            "encode": self._encode_arguments,
            "timestamp": lambda text: self._no_arguments(text, TimestampExpr()),
            "newuuid": lambda text: self._no_arguments(text, NewUuidExpr()),
        }
        if function not in argument_parsers:
            raise UnsupportedRuleSql(
                f"function {name.text}() is not supported; supported functions: "
                f"{_SUPPORTED_FUNCTIONS} (at position {name.position})"
            )
        expression = argument_parsers[function](name.text)
        self._expect_symbol(")", f"')' to close {name.text}(")
        return expression

    def _no_arguments(self, name: str, expression: Expression) -> Expression:
        token = self._peek()
        if not token.is_symbol(")"):
            raise UnsupportedRuleSql(f"{name}() takes no arguments (at position {token.position})")
        return expression

    def _topic_arguments(self, name: str) -> Expression:
        token = self._peek()
        if token.is_symbol(")"):
            return TopicExpr(None)
        self._next()
        if token.kind is _Kind.NUMBER and token.text.isdigit() and int(token.text) > 0:
            return TopicExpr(int(token.text))
        raise UnsupportedRuleSql(
            f"{name}() takes no argument or a positive segment number, found "
            f"{token.describe()} (at position {token.position})"
        )

    def _encode_arguments(self, name: str) -> Expression:
        token = self._next()
        if not token.is_symbol("*"):
            raise UnsupportedRuleSql(
                f"{name}() is supported only on * (the whole payload), found "
                f"{token.describe()} (at position {token.position})"
            )
        self._expect_symbol(",", f"',' after {name}(*")
        encoding = self._next()
        if encoding.kind is not _Kind.STRING or encoding.text[1:-1].lower() != "base64":
            raise UnsupportedRuleSql(
                f"{name}(*, ...) supports only the 'base64' encoding, found "
                f"{encoding.describe()} (at position {encoding.position})"
            )
        return Base64PayloadExpr()

    # -- FROM ------------------------------------------------------------------------------
    def _topic_filter(self) -> str:
        token = self._next()
        if token.kind is not _Kind.STRING:
            raise _unexpected(token, "a quoted topic filter after FROM, like 'dt/+/fault'")
        topic_filter = token.text[1:-1]
        problem = _topic_filter_problem(topic_filter)
        if problem:
            raise UnsupportedRuleSql(
                f"invalid topic filter {topic_filter!r}: {problem} (at position {token.position})"
            )
        return topic_filter

    # -- WHERE -----------------------------------------------------------------------------
    def _where(self) -> tuple[Comparison, ...]:
        self._next()  # WHERE
        conditions = [self._comparison()]
        while self._peek().is_word("AND"):
            self._next()
            conditions.append(self._comparison())
        return tuple(conditions)

    def _comparison(self) -> Comparison:
        left = self._comparison_subject()
        operator = self._next()
        if not operator.is_symbol("=", "<>"):
            raise _unexpected(operator, "= or <>")
        return Comparison(left, operator.text == "<>", self._literal())

    def _comparison_subject(self) -> Expression:
        token = self._peek()
        if self._at_call():
            expression = self._function_call()
            if not isinstance(expression, TopicExpr):
                raise UnsupportedRuleSql(
                    f"only topic(), topic(n) and payload fields can be compared in WHERE, not "
                    f"{token.text}() (at position {token.position})"
                )
            return expression
        if token.is_symbol("("):
            raise UnsupportedRuleSql(
                f"parenthesised conditions are not supported (at position {token.position})"
            )
        if token.kind is _Kind.WORD and token.text.upper() not in _UNSUPPORTED_WORDS:
            return self._field_path()
        raise _unexpected(token, "topic(n) or a payload field")

    def _field_path(self) -> FieldExpr:
        path = [self._field_name()]
        while self._peek().is_symbol("."):
            self._next()
            path.append(self._field_name())
        return FieldExpr(tuple(path))

    def _field_name(self) -> str:
        token = self._next()
        if token.kind is not _Kind.WORD or token.text.upper() in _KEYWORDS:
            raise _unexpected(token, "a payload field name")
        return token.text

    def _literal(self) -> SqlLiteral:
        token = self._next()
        if token.kind is _Kind.STRING:
            return token.text[1:-1]
        sign = 1
        if token.is_symbol("-"):
            sign, token = -1, self._next()
        if token.kind is _Kind.NUMBER:
            number = float(token.text) if re.search("[.eE]", token.text) else int(token.text)
            return sign * number
        if token.kind is _Kind.WORD and self._peek().is_symbol("("):
            raise UnsupportedRuleSql(
                "the right side of a comparison must be a 'string' or number literal, not "
                f"{token.text}() (at position {token.position})"
            )
        raise _unexpected(token, "a 'string' or number literal")


def _topic_filter_problem(topic_filter: str) -> str | None:
    if not topic_filter:
        return "it is empty"
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if level == "#" and index != len(levels) - 1:
            return "'#' must be the last level"
        if level not in ("+", "#") and ("+" in level or "#" in level):
            return "wildcards must occupy a whole level"
    return None


def parse_sql(sql: str) -> ParsedRule:
    """Parse a rule's SQL; raise `UnsupportedRuleSql` naming anything outside the subset."""
    return _Parser(sql).parse()
