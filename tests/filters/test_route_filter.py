"""ADT event route filters (docs/azure-behaviour.md §4)."""

from __future__ import annotations

import re

import pytest

from shared.filters.adt_route import RouteFilterSyntaxError, compile_route_filter

CREATE = {
    "type": "Microsoft.DigitalTwins.Twin.Create", "source": "inst.api.weu.digitaltwins.azure.net",
    "subject": "room1", "id": "e1", "specversion": "1.0", "datacontenttype": "application/json",
    "data": {"$dtId": "room1", "$metadata": {"$model": "dtmi:contoso:Room;1"}, "Temperature": 21.5,
             "Occupied": True, "Name": None, "Tags": ["a"]},
}
UPDATE = {**CREATE, "type": "Microsoft.DigitalTwins.Twin.Update",
          "data": {"modelId": "dtmi:contoso:Room;1", "patch": [{"op": "replace", "path": "/T", "value": 1}]}}
TELEMETRY = {"type": "microsoft.iot.telemetry", "source": "inst.api.weu.digitaltwins.azure.net/digitaltwins/room1",
             "subject": "", "id": "m1", "specversion": "1.0", "dataschema": "dtmi:contoso:Room;1",
             "data": {"Temperature": 30}}


@pytest.mark.parametrize(("text", "event", "expected"), [
    ("true", CREATE, True),
    ("false", CREATE, False),
    ("type = 'Microsoft.DigitalTwins.Twin.Create'", CREATE, True),
    ("type = 'microsoft.digitaltwins.twin.create'", CREATE, False),  # case-sensitive
    ("type = 'microsoft.iot.telemetry' AND dataschema = 'dtmi:contoso:Room;1'", TELEMETRY, True),
    ("$body.$metadata.$model = 'dtmi:contoso:Room;1'", CREATE, True),
    ("$body.modelId = 'dtmi:contoso:Room;1'", UPDATE, True),
    ("$body.Temperature > 20 AND $body.Temperature <= 21.5", CREATE, True),
    ("$body.temperature > 20", CREATE, False),
    ("$body.Temperature >= 30", TELEMETRY, True),
    ("$body.Occupied = true", CREATE, True),
    ("$body.Occupied = 1", CREATE, False),          # booleans are not numbers
    ("$body.Name = null", CREATE, True),
    ("$body.Missing = null", CREATE, False),        # absent is not null
    ("$body.Missing != 'x'", CREATE, False),        # absent: every comparison false
    ("$body.Temperature != 'x'", CREATE, True),     # different types are unequal
    ("$body.Temperature < 'x'", CREATE, False),
    ("$body.Tags = 'a'", CREATE, False),            # no filtering on arrays
    ("$body.patch = 'x'", UPDATE, False),
    ("STARTS_WITH(type, 'Microsoft.DigitalTwins.')", CREATE, True),
    ("ENDS_WITH(source, 'azure.net')", CREATE, True),
    ("CONTAINS(subject, 'oom')", CREATE, True),
    ("CONTAINS(subject, 'OOM')", CREATE, False),
    ("CONTAINS($body.Temperature, '2')", CREATE, False),
    ("subject = 'x' OR (type = 'Microsoft.DigitalTwins.Twin.Create' AND specversion = '1.0')", CREATE, True),
    ("datacontenttype = 'application/json' and id = 'e1'", CREATE, True),
    ("dataschema = 'x'", CREATE, False),
    ("'room1' = subject", CREATE, True),
    ("$body.Temperature > -1.5e1", CREATE, True),
    ("true AND type = 'x'", CREATE, False),
])
def test_route_filter(text: str, event: dict, expected: bool) -> None:
    f = compile_route_filter(text)
    assert f.matches(event) is expected
    again = compile_route_filter(f.to_text())
    assert again.to_text() == f.to_text() and again.matches(event) is expected


@pytest.mark.parametrize(("text", "canonical"), [
    ("type='a' and (subject='b' or subject='c')", "type = 'a' AND (subject = 'b' OR subject = 'c')"),
    ("(type='a' and subject='b') or subject='c'", "type = 'a' AND subject = 'b' OR subject = 'c'"),
    ("starts_with(type, \"it's\")", "STARTS_WITH(type, 'it\\'s')"),
    ("TRUE", "true"),
])
def test_canonical(text: str, canonical: str) -> None:
    assert compile_route_filter(text).to_text() == canonical == str(compile_route_filter(canonical))


@pytest.mark.parametrize(("text", "position", "message"), [
    ("", 0, "empty filter"),
    ("type == 'a'", 6, "expected an attribute"),
    ("NOT type = 'a'", 0, "NOT is not supported"),
    ("Type = 'a'", 0, "unknown attribute 'Type'"),
    ("type = 'a' AND", 14, "expected an attribute"),
    ("(type = 'a'", 11, "expected ')'"),
    ("type = 'a", 7, "unterminated string"),
    ("'a' = 'b'", 0, "needs an attribute"),
    ("type IN ('a')", 5, "expected a comparison operator"),
    ("STARTS_WITH(type 'a')", 17, "expected ','"),
    ("$body..x = 1", 0, "malformed path"),
    ("type = 'a' subject = 'b'", 11, "unexpected 'subject'"),
    ("type = #", 7, "unexpected character"),
])
def test_syntax_errors(text: str, position: int, message: str) -> None:
    with pytest.raises(RouteFilterSyntaxError, match=re.escape(message)) as exc:
        compile_route_filter(text)
    assert exc.value.position == position
    assert isinstance(exc.value, ValueError)
