"""IoT Hub routing queries: docs/azure-behaviour.md §3 vectors R1–R6 and own cases."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from shared.filters.iothub_query import UNDEFINED, QuerySyntaxError, compile_routing_query


def tel(body: Any = None, props: dict | None = None, content_type: str | None = "application/json",
        encoding: str | None = "utf-8", **system: str) -> dict:
    sp = {"iothub-connection-device-id": "d1", "iothub-enqueuedtime": "2026-06-06T22:56:07Z", **system}
    if content_type is not None:
        sp["iothub-content-type"] = content_type
    if encoding is not None:
        sp["iothub-content-encoding"] = encoding
    return {"body": body, "properties": props or {}, "systemProperties": sp}


def m(query: str, telemetry: dict, twin: dict | None = None) -> bool:
    q = compile_routing_query(query)
    result = q.matches(telemetry, twin)
    assert compile_routing_query(q.to_text()).matches(telemetry, twin) is result  # canonical form agrees
    return result


# ---- R1–R6 ---------------------------------------------------------------------------------------------------

def test_R1_body_not_evaluated_without_content_type() -> None:
    assert not m("$body.t > 20", tel({"t": 25}, content_type=None))
    assert m("$body.t > 20", tel({"t": 25}))


def test_R2_utf16_json_body_is_evaluated() -> None:
    raw = base64.b64encode(json.dumps({"t": 25}).encode("utf-16")).decode()
    assert m("$body.t > 20", tel(raw, content_type="application/json", encoding="UTF-16"))


def test_R3_application_property_names_case_insensitive() -> None:
    assert m("processingPath = 'hot'", tel(props={"ProcessingPath": "hot"}))


def test_R4_missing_twin_tag_is_false() -> None:
    assert not m("$twin.tags.floor = 1", tel(), {"tags": {}})
    assert not m("$twin.tags.floor = 1", tel(), None)
    assert m("$twin.tags.floor = 1", tel(), {"tags": {"floor": 1}})


def test_R5_is_defined_on_object_is_false() -> None:
    assert not m("IS_DEFINED($body.obj)", tel({"obj": {"a": 1}}))
    assert m("IS_DEFINED($body.obj.a)", tel({"obj": {"a": 1}}))


def test_R6_in_is_a_syntax_error() -> None:
    with pytest.raises(QuerySyntaxError, match="IN is not supported") as exc:
        compile_routing_query("level IN ('a')")
    assert exc.value.position == 6


# ---- body handling -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("ct", "enc", "expected"), [
    ("application/json", "utf-8", True),
    ("Application/JSON", "UTF-8", True),
    ("application/json; charset=utf-8", "utf-8", True),
    ("application/json", "utf-32", True),
    ("text/plain", "utf-8", False),
    ("application/json", "latin-1", False),
    ("application/json", None, False),
])
def test_body_content_type_and_encoding(ct: str, enc: str | None, expected: bool) -> None:
    assert m("$body.t = 1", tel({"t": 1}, content_type=ct, encoding=enc)) is expected


def test_base64_body_decoded_and_bad_base64_undefined() -> None:
    raw = base64.b64encode(b'{"t": {"u": [1, {"v": "x"}]}}').decode()
    assert m("$body.t.u[1].v = 'x' AND $body.t.u[0] = 1", tel(raw))
    assert not m("$body.t = 1", tel("%%%not base64"))
    assert not m("$body.t = 1", tel(base64.b64encode(b"not json").decode()))


def test_whole_body_unsupported_and_paths_case_sensitive() -> None:
    assert not m("IS_DEFINED($body)", tel({"t": 1}))
    assert not m("$body[0] = 1", tel([1]))
    assert not m("$body.T = 1", tel({"t": 1}))
    assert m("$BODY.t = 1", tel({"t": 1}))  # the $body keyword itself is case-insensitive


# ---- system / application properties / twin -------------------------------------------------------------------

def test_system_properties() -> None:
    t = tel({"t": 1}, **{"iothub-connection-module-id": "m1", "dt-dataschema": "dtmi:x;1"})
    assert m("$connectionDeviceId = 'd1' AND $connectionModuleId = 'm1'", t)
    assert m("$contentType = 'application/json' AND $contentEncoding = 'utf-8'", t)
    assert m("$enqueuedTime > '2022-06-06T22:56:06Z'", t)
    assert m("$dt-dataschema = 'dtmi:x;1'", t)
    assert m("$CONNECTIONDEVICEID = 'd1'", t)
    assert not m("$connectionDeviceId = 'D1'", t)   # values: case-sensitive (documented choice)


def test_dollar_name_falls_back_to_app_property() -> None:
    assert m("$custom = 'x'", tel(props={"$custom": "x"}))
    assert m("$custom = 'sys'", tel(props={"$custom": "x"}, custom="sys"))  # system properties first


def test_app_properties_are_strings() -> None:
    t = tel(props={"level": "7"})
    assert not m("level > 5", t)
    assert m("AS_NUMBER(level) > 5", t)
    assert m("level = '7'", t)


def test_twin_names_case_insensitive() -> None:
    twin = {"tags": {"Floor": 3}, "properties": {"desired": {"mode": "eco"}, "reported": {"fw": "1.2"}}}
    assert m("$twin.TAGS.floor = 3 AND $twin.properties.desired.mode = 'eco'", tel(), twin)
    assert m("$twin.properties.reported.fw >= '1.2'", tel(), twin)


# ---- operators and three-valued logic --------------------------------------------------------------------------

@pytest.mark.parametrize(("query", "expected"), [
    ("", True),
    ("   ", True),
    ("true", True),
    ("false", False),
    ("null", False),
    ("undefined", False),
    ("'true'", False),
    ("1", False),
    ("1 + 2 * 3 = 7", True),
    ("(1 + 2) * 3 = 9", True),
    ("7 % 3 = 1 AND -7 % 3 = -1", True),
    ("7 / 2 = 3.5", True),
    ("1 / 0 = 1", False),
    ("NOT (1 / 0 = 1)", False),          # NOT undefined is undefined
    ("1 / 0 = 1 OR true", True),
    ("false AND 1 / 0 = 1", False),
    ("1 <> 2 AND 1 != 2", True),
    ("'a' < 'b' AND 'B' < 'a'", True),  # ordinal
    ("'1' = 1", False),
    ("NOT ('1' = 1)", False),
    ("null = null", True),
    ("true > false", False),
    ("[1, 2] = [1, 2]", True),
    ("[1, 'a'] != [1, 'b']", True),
    ("0x1F = 31", True),
    ("1e3 = 1000", True),
    (".5 = 0.5", True),
    ("'it\\'s' = \"it's\"", True),
    ("'\\u0041' = 'A'", True),
    ("'a' + 'b' = 'ab'", False),
    ("NOT NOT true", True),
    ("-(-3) = 3 AND - 3 = -3", True),
    ("true AND 1", False),
    ("TRUE and NOT FALSE", True),
])
def test_expressions(query: str, expected: bool) -> None:
    assert m(query, tel()) is expected


def test_evaluate_exposes_undefined() -> None:
    assert compile_routing_query("$body.x").evaluate(tel({})) is UNDEFINED
    assert compile_routing_query("1 = '1'").evaluate(tel()) is UNDEFINED


# ---- functions -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("query", "expected"), [
    ("ABS(-2) = 2 AND SQUARE(3) = 9 AND POWER(2, 10) = 1024", True),
    ("CEILING(1.2) = 2 AND FLOOR(-1.2) = -2 AND SIGN(-5) = -1 AND SIGN(0) = 0", True),
    ("SQRT(16) = 4 AND EXP(0) = 1", True),
    ("IS_DEFINED(SQRT(-1))", False),
    ("IS_DEFINED(POWER(10, 1000))", False),
    ("IS_DEFINED(ABS('x'))", False),
    ("AS_NUMBER('12.5') = 12.5 AND NOT IS_DEFINED(AS_NUMBER('x')) AND NOT IS_DEFINED(AS_NUMBER(true))", True),
    ("IS_ARRAY($body.arr) AND IS_OBJECT($body.obj) AND IS_BOOL($body.b) AND IS_NULL($body.n)", True),
    ("IS_NUMBER($body.num) AND IS_STRING($body.s) AND IS_PRIMITIVE($body.s) AND NOT IS_PRIMITIVE($body.obj)", True),
    ("NOT IS_NUMBER($body.b) AND NOT IS_STRING($body.missing) AND IS_DEFINED($body.n)", True),
    ("CONCAT($body.s, '-', 'x') = 'Hello-x' AND LENGTH($body.s) = 5", True),
    ("LOWER($body.s) = 'hello' AND UPPER($body.s) = 'HELLO'", True),
    ("SUBSTRING($body.s, 1, 3) = 'ell' AND INDEX_OF($body.s, 'l') = 2 AND INDEX_OF($body.s, 'z') = -1", True),
    ("STARTSWITH($body.s, 'He') AND ENDSWITH($body.s, 'lo') AND CONTAINS($body.s, 'ell')", True),
    ("STARTSWITH($body.s, 'he')", False),
    ("IS_DEFINED(LENGTH($body.num))", False),
    ("is_defined($body.s) and startswith($body.s, 'H')", True),
])
def test_functions(query: str, expected: bool) -> None:
    body = {"arr": [1], "obj": {"a": 1}, "b": True, "n": None, "num": 1.5, "s": "Hello"}
    assert m(query, tel(body)) is expected


# ---- syntax errors -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("query", "position", "message"), [
    ("a = ", 4, "unexpected end"),
    ("(a = 1", 6, "expected ')'"),
    ("a = 'x", 4, "unterminated string"),
    ("a < b < c", 6, "chained"),
    ("foo(1)", 0, "unknown function"),
    ("ABS(1, 2)", 0, "ABS takes 1"),
    ("CONCAT('a')", 0, "at least 2"),
    ("a = 1 b", 6, "unexpected name"),
    ("a = #", 4, "unexpected character"),
    ("a ! b", 2, "'!'"),
    ("a = 'bad \\q'", 9, "invalid escape"),
    ("a = '\\u12'", 5, "\\u escape"),
    ("a = 0x", 4, "hex"),
    ("a = 12abc", 4, "invalid number"),
    ("$body. = 1", 6, "property name"),
    ("a = {\"x\": 1}", 4, "unexpected character"),
    ("AND a", 0, "unexpected keyword AND"),
    ("a = [1, 2", 9, "expected ',' or ']'"),
    ("$body.arr[1 = 1", 11, "']'"),
])
def test_syntax_errors_carry_position(query: str, position: int, message: str) -> None:
    with pytest.raises(QuerySyntaxError, match=re.escape(message)) as exc:
        compile_routing_query(query)
    assert exc.value.position == position
    assert f"at position {position}" in str(exc.value)
    assert isinstance(exc.value, ValueError)


# ---- canonical text ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("query", "canonical"), [
    ("$body.t>20 or processingPath='hot'", "$body.t > 20 OR processingPath = 'hot'"),
    ("(a = 1 OR b = 2) AND c = 3", "(a = 1 OR b = 2) AND c = 3"),
    ("a = 1 OR (b = 2 AND c = 3)", "a = 1 OR b = 2 AND c = 3"),
    ("not (a = 1 or b = 2)", "NOT (a = 1 OR b = 2)"),
    ("1 - (2 - 3) = 2", "1 - (2 - 3) = 2"),
    ("(1 - 2) - 3 = -4", "1 - 2 - 3 = -4"),
    ('a = "it\'s"', "a = 'it\\'s'"),
    ("is_defined($twin.tags.x)", "IS_DEFINED($twin.tags.x)"),
    ("x = 0x10", "x = 16"),
    ("a <> b", "a != b"),
    ("", "true"),
])
def test_canonical_text(query: str, canonical: str) -> None:
    q = compile_routing_query(query)
    assert q.to_text() == canonical == str(q)
    assert compile_routing_query(canonical).to_text() == canonical
