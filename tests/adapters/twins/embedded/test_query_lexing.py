"""The ADT query language's tokens, read by shared.filters.lexer: string escapes exactly as the Cosmos DB SQL dialect
defines them (Learn cosmos-db/nosql/query/constants; concepts-query-language documents ``\\'``), numbers, and
syntax errors that name where the offending token starts."""

from __future__ import annotations

import pytest

from shared.adapters.twins.embedded import AdtError
from shared.adapters.twins.embedded.query import Compare, Const, Ref, parse_query

WHERE = "SELECT * FROM DIGITALTWINS WHERE x = "


def _value(literal: str) -> object:
    where = parse_query(WHERE + literal).where
    assert isinstance(where, Compare) and where.left == Ref(("x",)) and isinstance(where.right, Const)
    return where.right.value


def _refusal(query: str) -> str:
    with pytest.raises(AdtError) as caught:
        parse_query(query)
    assert (caught.value.status, caught.value.code) == (400, "SqlQueryError")
    return caught.value.message


@pytest.mark.parametrize(("literal", "value"), [
    ("'D\\'Souza'", "D'Souza"),  # Learn's EscapedSingleQuote
    ('"D\'Souza"', "D'Souza"),
    ("'say \\\"hi\\\"'", 'say "hi"'),
    ("'a\\\\b\\/c'", "a\\b/c"),
    ("'\\b\\f\\n\\r\\t'", "\b\f\n\r\t"),
    ("'\\u0044\\u00e9'", "D\u00e9"),
])
def test_every_cosmos_escape_is_read(literal: str, value: str) -> None:
    assert _value(literal) == value


@pytest.mark.parametrize(("literal", "message"), [
    ("'D\\qSouza'", "invalid escape \\q at position 39"),  # was read leniently as "DqSouza"
    ("'\\u12'", "invalid \\u escape (need 4 hex digits) at position 38"),  # was read as "u12"
    ("'\\u00g0'", "invalid \\u escape (need 4 hex digits) at position 38"),
    ("'abc\\", "unterminated string at position 37"),
    ("'abc", "unterminated string at position 37"),
])
def test_other_escapes_are_syntax_errors(literal: str, message: str) -> None:
    assert _refusal(WHERE + literal) == message


def test_an_error_about_a_string_names_where_it_starts() -> None:
    """A string token's position was its end (30 here)."""
    assert _refusal("SELECT * FROM DIGITALTWINS 'x' ") == "unexpected 'x' at position 27"


@pytest.mark.parametrize(("literal", "value"), [
    ("5", 5), ("-5", -5), ("2.5", 2.5), ("-.5", -0.5), ("1e3", 1000.0), ("-2E-1", -0.2),
])
def test_numbers(literal: str, value: float) -> None:
    got = _value(literal)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(("literal", "message"), [
    ("-.y", "unexpected character '-' at position 37"),  # was an AssertionError out of the engine
    ("0x10", "invalid number literal at position 37"),  # Learn documents no hexadecimal literals
    ("12abc", "invalid number literal at position 37"),
])
def test_malformed_numbers_are_syntax_errors(literal: str, message: str) -> None:
    assert _refusal(WHERE + literal) == message


def test_quoted_names() -> None:
    assert parse_query("SELECT * FROM DIGITALTWINS WHERE [[Group]] = 'x'").where == Compare(
        "=", Ref(("Group",)), Const("x"))
    assert _refusal("SELECT * FROM DIGITALTWINS WHERE [[Group = 'x'") == "unterminated [[name]] at position 33"
