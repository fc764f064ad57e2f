"""Azure Digital Twins' error model: an HTTP status, a stable ``code`` (also sent as ``x-ms-error-code``), a message
and optional ``details`` — the body ``{"error": {"code", "message", "details"}}`` of the data-plane spec
(azure-rest-api-specs, digitaltwins 2023-10-31, ``ErrorResponse``). Codes per operation are those the spec lists
(e.g. ``DigitalTwinNotFound``, ``TargetTwinNotFound``, ``RelationshipsNotDeleted``, ``ModelReferencesNotDeleted``,
``EventRouteFilterInvalid``, ``SqlQueryError``)."""

from __future__ import annotations

from typing import Any


class AdtError(Exception):
    """One refused request, as ADT would answer it."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None,
                 path: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.path = path  # the offending field (JSON Pointer or dotted), for callers that quarantine by path

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def bad_request(code: str, message: str, path: str = "") -> AdtError:
    details = [{"code": code, "message": message, "target": path}] if path else None
    return AdtError(400, code, message, details, path)


def validation_failed(message: str, path: str = "") -> AdtError:
    return bad_request("ValidationFailed", message, path)


def patch_invalid(message: str, path: str = "") -> AdtError:
    return bad_request("JsonPatchInvalid", message, path)


def not_found(code: str, message: str) -> AdtError:
    return AdtError(404, code, message)


def precondition_failed(message: str) -> AdtError:
    return AdtError(412, "PreconditionFailed", message)


def conflict(code: str, message: str) -> AdtError:
    return AdtError(409, code, message)
