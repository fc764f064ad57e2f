"""Telemetry body decoding (docs/azure-behaviour.md §1.2).

IoT Hub puts the body in the event as a JSON object only when the message's content type is ``application/json``
and its encoding ``utf-8`` (both case-insensitive); otherwise the body arrives base64-encoded. Devices that forget
to set these properties are common, so a base64 body whose bytes are UTF-8 JSON is used as JSON (configurable).
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Any

import orjson

from shared.errors import Code, PermanentError
from shared.ingest.events import IotHubEvent

_BODY = "data.body"


def is_json_content(content_type: str | None, content_encoding: str | None) -> bool:
    if not content_type or not content_encoding:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" and content_encoding.strip().lower() in ("utf-8", "utf8")


def decode_body(event: IotHubEvent, *, base64_json: bool, max_bytes: int) -> dict[str, Any]:
    """The telemetry body as a JSON object, or a permanent error saying why it cannot be one."""
    body = event.body
    if isinstance(body, dict):
        return body
    assert isinstance(body, str)
    if is_json_content(event.content_type, event.content_encoding):
        # IoT Hub embeds JSON bodies as JSON; a string here is a JSON string value, not an object.
        raise PermanentError.at(Code.BODY_NOT_JSON, _BODY, "JSON body is a string, expected an object")
    try:
        raw = b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise PermanentError.at(Code.BODY_NOT_BASE64, _BODY, "body is neither a JSON object nor valid base64") from None
    if len(raw) > max_bytes:
        raise PermanentError.at(Code.EVENT_TOO_LARGE, _BODY, f"body is {len(raw)} bytes, the limit is {max_bytes}")
    if not base64_json:
        raise PermanentError.at(
            Code.BODY_NOT_JSON, _BODY,
            "base64 body (device did not send contentType=application/json, contentEncoding=utf-8) "
            "and telemetry.base64_json is off",
        )
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise PermanentError.at(Code.BODY_NOT_JSON, _BODY, "base64 body does not decode to UTF-8 JSON") from None
    if not isinstance(decoded, dict):
        kind = type(decoded).__name__
        raise PermanentError.at(Code.BODY_NOT_JSON, _BODY, f"decoded body is a JSON {kind}, expected an object")
    return decoded
