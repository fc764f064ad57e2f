"""Property: whatever fails and how often, an event route delivers every notification once and each twin's in the
order they were written (the lanes of twinbridge/adt/endpoints.py), with parallel lanes and transient failures."""

from __future__ import annotations

import threading
from typing import Any
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

import twinbridge.adt.endpoints as endpoints_module
from shared.adapters.twins.embedded import TwinGraph
from twinbridge.adt.endpoints import Endpoint, RouteDispatcher

MODEL = {"@id": "dtmi:test:prop:T;1", "@type": "Interface", "@context": "dtmi:dtdl:context;3",
         "contents": [{"@type": "Property", "name": "n", "schema": "integer"}]}


@settings(max_examples=25, deadline=None)
@given(writes=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3)), min_size=1, max_size=40),
       lanes=st.integers(1, 4))
def test_every_notification_once_in_order_per_twin(writes: list[tuple[int, int]], lanes: int) -> None:
    failures: dict[int, int] = {}  # value n → attempts that fail before it goes through
    delivered: list[tuple[str, int]] = []
    lock = threading.Lock()

    def post(self: Any, event: dict[str, Any], attempt: int) -> None:
        value = event["data"]["patch"][0]["value"] if event["type"].endswith("Update") else -1
        with lock:
            if value >= 0 and failures.get(value, 0) >= attempt:
                raise ConnectionError("endpoint down")
            delivered.append((event["subject"], value))

    with patch.object(endpoints_module._Sender, "_post", post), \
            patch.multiple(endpoints_module, BACKOFF=(0.0,) * 5, BACKOFF_CAP=0.0):
        graph = TwinGraph()
        endpoint = Endpoint("hook", "webhook", "eventgrid", url="http://unused", validate=False, lanes=lanes)
        dispatcher = RouteDispatcher(graph, {"hook": endpoint}, "127.0.0.1:1")
        graph.add_models([MODEL])
        graph.put_event_route("updates", {"endpointName": "hook",
                                          "filter": "type = 'Microsoft.DigitalTwins.Twin.Update'"})
        for twin in range(5):
            graph.put_twin(f"t{twin}", {"$metadata": {"$model": MODEL["@id"]}, "n": -1})
        expected: dict[str, list[int]] = {}
        for n, (twin, fail) in enumerate(writes):
            failures[n] = fail
            graph.patch_twin(f"t{twin}", [{"op": "replace", "path": "/n", "value": n}])
            expected.setdefault(f"t{twin}", []).append(n)
        assert dispatcher.drain(20)
        dispatcher.close()
    got: dict[str, list[int]] = {}
    for subject, value in delivered:
        got.setdefault(subject, []).append(value)
    assert got == expected
