"""The REST surface below the SDK: first stdout line, TLS trust, auth, error headers, paging, query-charge,
persistence across restarts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.support.adt_emulator import REPO, start_emulator

pytestmark = pytest.mark.integration

API = {"api-version": "2023-10-31"}
AUTH = {"Authorization": "Bearer anything"}
MODEL = {"@id": "dtmi:test:Thing;1", "@type": "Interface", "@context": "dtmi:dtdl:context;3",
         "contents": [{"@type": "Property", "name": "n", "schema": "integer"},
                      {"@type": "Relationship", "name": "next"}]}


@pytest.fixture
def http(emulator, adt):
    session = requests.Session()
    session.headers.update(AUTH)
    session.params = dict(API)
    base = emulator.url

    def call(method: str, path: str, **kwargs):
        # verify per request: a Session's own verify loses to REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE in the environment
        return session.request(method, base + path, verify=emulator.ca, **kwargs)

    call("POST", "/models", json=[MODEL])
    return call


def test_first_line_names_an_absolute_ca_path(emulator):
    match = re.fullmatch(r"ADT emulator listening on https://127\.0\.0\.1:(\d+) \(CA certificate: (.+)\)",
                         emulator.first_line)
    assert match is not None and int(match.group(1)) > 0
    assert Path(match.group(2)).is_absolute() and Path(match.group(2)).is_file()


def test_requests_ca_bundle_works_without_code_change(emulator, adt):
    """REQUESTS_CA_BUNDLE=CA and no connection_verify: the SDK's requests transport trusts the emulator."""
    script = ("import sys, time; from azure.core.credentials import AccessToken;"
              "from azure.digitaltwins.core import DigitalTwinsClient;"
              "C = type('C', (), {'get_token': lambda self, *a, **k: AccessToken('t', int(time.time()) + 60)});"
              "print(len(list(DigitalTwinsClient(sys.argv[1], C()).list_models())))")
    env = {**os.environ, "REQUESTS_CA_BUNDLE": emulator.ca}
    out = subprocess.run([sys.executable, "-c", script, emulator.url], env=env, capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"
    untrusted = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    refused = subprocess.run([sys.executable, "-c", script, emulator.url], env=untrusted, capture_output=True,
                             text=True, timeout=60, cwd=REPO)
    assert refused.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr


def test_a_bearer_token_is_required_but_any_is_accepted(emulator, http):
    bare = requests.get(emulator.url + "/models", params=API, verify=emulator.ca)
    assert bare.status_code == 401 and bare.headers["x-ms-error-code"] == "Unauthorized"
    assert http("GET", "/models").status_code == 200


def test_errors_carry_the_code_header_and_body(http):
    """ADT's ErrorResponse: {"error": {"code", "message", "details"?}} and the x-ms-error-code header."""
    missing = http("GET", "/digitaltwins/ghost")
    assert missing.status_code == 404 and missing.headers["x-ms-error-code"] == "DigitalTwinNotFound"
    assert missing.json()["error"]["code"] == "DigitalTwinNotFound" and missing.json()["error"]["message"]
    bad = http("PUT", "/digitaltwins/t", json={"$metadata": {"$model": "dtmi:test:Thing;1"}, "n": "text"})
    assert bad.status_code == 400 and bad.headers["x-ms-error-code"] == "ValidationFailed"
    details = bad.json()["error"]["details"]
    assert details[0]["code"] == "ValidationFailed" and details[0]["target"] == "/n"


def test_put_without_if_none_match_upserts(http):
    """ADT's PUT is add-or-replace (200 both times); only If-None-Match: * makes it create-only. The old fake
    refused a PUT without If-None-Match."""
    body = {"$metadata": {"$model": "dtmi:test:Thing;1"}, "n": 1}
    first = http("PUT", "/digitaltwins/t", json=body)
    second = http("PUT", "/digitaltwins/t", json={**body, "n": 2})
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["ETag"] != second.headers["ETag"] and second.json()["n"] == 2
    refused = http("PUT", "/digitaltwins/t", json=body, headers={"If-None-Match": "*"})
    assert refused.status_code == 412 and refused.headers["x-ms-error-code"] == "PreconditionFailed"


def test_patch_answers_204_with_the_new_etag(http):
    created = http("PUT", "/digitaltwins/t", json={"$metadata": {"$model": "dtmi:test:Thing;1"}, "n": 1})
    patched = http("PATCH", "/digitaltwins/t", json=[{"op": "replace", "path": "/n", "value": 2}],
                   headers={"If-Match": created.headers["ETag"], "Content-Type": "application/json-patch+json"})
    assert patched.status_code == 204 and patched.content == b""
    assert patched.headers["ETag"] == http("GET", "/digitaltwins/t").headers["ETag"] != created.headers["ETag"]


def test_lists_page_with_next_link(emulator, http):
    """List operations page with an absolute nextLink that carries everything the next request needs."""
    http("PUT", "/digitaltwins/hub", json={"$metadata": {"$model": "dtmi:test:Thing;1"}})
    for i in range(5):
        http("PUT", f"/digitaltwins/t{i}", json={"$metadata": {"$model": "dtmi:test:Thing;1"}})
        http("PUT", f"/digitaltwins/hub/relationships/r{i}", json={"$targetId": f"t{i}", "$relationshipName": "next"})
    first = http("GET", "/digitaltwins/hub/relationships", headers={"max-items-per-page": "2"}).json()
    assert len(first["value"]) == 2 and first["nextLink"].startswith(emulator.url)
    seen = [r["$relationshipId"] for r in first["value"]]
    link = first["nextLink"]
    pages = 1
    while link:
        page = requests.get(link, headers={**AUTH, "max-items-per-page": "2"}, verify=emulator.ca).json()
        seen += [r["$relationshipId"] for r in page["value"]]
        link = page["nextLink"]
        pages += 1
    assert seen == [f"r{i}" for i in range(5)] and pages == 3
    stale = http("GET", "/digitaltwins/hub/relationships", params={**API, "continuationToken": "nope"})
    assert stale.status_code == 400 and stale.headers["x-ms-error-code"] == "BadRequest"


def test_query_pages_with_a_continuation_token_and_reports_a_charge(http):
    for i in range(5):
        http("PUT", f"/digitaltwins/t{i}", json={"$metadata": {"$model": "dtmi:test:Thing;1"}, "n": i})
    first = http("POST", "/query", json={"query": "SELECT T.n FROM DIGITALTWINS T WHERE T.n >= 1"},
                 headers={"max-items-per-page": "3"})
    assert first.status_code == 200 and float(first.headers["query-charge"]) > 0
    body = first.json()
    assert body["value"] == [{"n": 1}, {"n": 2}, {"n": 3}] and body["continuationToken"]
    rest = http("POST", "/query", json={"continuationToken": body["continuationToken"]}).json()
    assert rest == {"value": [{"n": 4}], "continuationToken": None}


def test_query_errors_are_sql_query_errors(http):
    bad = http("POST", "/query", json={"query": "SELECT * FROM DIGITALTWINS WHERE"})
    assert bad.status_code == 400 and bad.headers["x-ms-error-code"] == "SqlQueryError"


def test_telemetry_needs_a_message_id(http):
    http("PUT", "/digitaltwins/t", json={"$metadata": {"$model": "dtmi:test:Thing;1"}})
    missing = http("POST", "/digitaltwins/t/telemetry", json={"x": 1})
    assert missing.status_code == 400 and missing.headers["x-ms-error-code"] == "InvalidArgument"
    assert http("POST", "/digitaltwins/t/telemetry", json={"x": 1}, headers={"Message-Id": "m1"}).status_code == 204


def test_the_graph_survives_a_restart_with_db(tmp_path):
    db = tmp_path / "twins.db"
    first = start_emulator(tmp_path / "tls", "--db", str(db))
    try:
        client = first.client()
        client.create_models([MODEL])
        client.upsert_digital_twin("a", {"$metadata": {"$model": "dtmi:test:Thing;1"}, "n": 7})
        client.upsert_digital_twin("b", {"$metadata": {"$model": "dtmi:test:Thing;1"}})
        client.upsert_relationship("a", "r", {"$targetId": "b", "$relationshipName": "next"})
        etag = client.get_digital_twin("a")["$etag"]
    finally:
        first.stop()
    second = start_emulator(tmp_path / "tls", "--db", str(db))
    try:
        client = second.client()
        assert second.ca == first.ca  # the CA is made once and kept
        twin = client.get_digital_twin("a")
        assert twin["n"] == 7 and twin["$etag"] == etag
        assert [r["$targetId"] for r in client.list_relationships("a")] == ["b"]
        assert [m.id for m in client.list_models()] == ["dtmi:test:Thing;1"]
    finally:
        second.stop()


def test_ids_with_reserved_url_characters(adt):
    """Twin and relationship ids are free text (the IoT Hub bug of Learn's issue #62635 had 'devices/thermostat67');
    the SDK percent-encodes them and the emulator decodes each path segment on its own."""
    adt.create_models([MODEL])
    odd = ["a b/c?d#e%f", "devices/thermostat67", "ünï"]
    for twin_id in odd:
        adt.upsert_digital_twin(twin_id, {"$metadata": {"$model": "dtmi:test:Thing;1"}})
        assert adt.get_digital_twin(twin_id)["$dtId"] == twin_id
    adt.upsert_relationship(odd[0], "x/y", {"$targetId": odd[2], "$relationshipName": "next"})
    assert [r["$relationshipId"] for r in adt.list_relationships(odd[0])] == ["x/y"]
    link = next(iter(adt.list_incoming_relationships(odd[2]))).relationship_link
    assert link == "/digitaltwins/a%20b%2Fc%3Fd%23e%25f/relationships/x%2Fy"


def test_cors_answers_loopback_pages_only(emulator, http):
    """A browser page served from this machine (issue 20's explorer) may call the API; other origins get no CORS
    headers, so their scripts cannot read the answers."""
    local = "http://localhost:8000"
    preflight = requests.options(emulator.url + "/query", verify=emulator.ca,
                                 headers={"Origin": local, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204 and preflight.headers["Access-Control-Allow-Origin"] == local
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    answer = http("GET", "/models", headers={"Origin": local})
    assert answer.headers["Access-Control-Allow-Origin"] == local
    assert "ETag" in answer.headers["Access-Control-Expose-Headers"]
    foreign = http("GET", "/models", headers={"Origin": "https://example.com"})
    assert "Access-Control-Allow-Origin" not in foreign.headers
    refused = requests.options(emulator.url + "/query", verify=emulator.ca, headers={"Origin": "https://example.com"})
    assert refused.status_code == 403
