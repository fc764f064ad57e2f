"""Door: Event Grid delivering to an HTTP endpoint (Event Grid schema arrays, CloudEvents single or batch).

Why a webhook as well as the Event Grid trigger: the Python trigger gets one event per invocation and cannot
choose its status code. Here a delivered array is one pipeline batch (patches coalesced per twin) and the status
code follows Event Grid's retry rules. Decisions live in ``shared/doors/webhook.py``; this is translation only.
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions.runtime import current_app
from shared.doors.webhook import Deliver, Reply, WebhookPolicy, batch_reply, decide_post, options_reply, transient_reply
from shared.doors.webhook_auth import KeySource, TokenPolicy, TokenRejected, verify_bearer
from shared.errors import TransientError
from shared.observability import run_batch
from shared.settings.doors import DoorSettings
from shared.settings.gc_tuning import note_input

log = logging.getLogger("twinbridge.webhook")

bp = func.Blueprint()


def policy_from(doors: DoorSettings) -> WebhookPolicy:
    return WebhookPolicy(frozenset(doors.webhook_subscriptions), doors.webhook_max_body_bytes,
                         doors.webhook_retry_after)


def check_token(req: func.HttpRequest, doors: DoorSettings, keys: KeySource | None) -> Reply | None:
    """401 unless the bearer token is valid — only when WEBHOOK_AUTH_AUDIENCE is configured."""
    if not doors.webhook_auth_audiences:
        return None
    if not doors.webhook_auth_jwks_url or keys is None:
        log.error("WEBHOOK_AUTH_AUDIENCE is set but WEBHOOK_AUTH_JWKS_URL is not: refusing every request")
        return Reply(401, {"error": {"code": "UNAUTHORIZED", "message": "token validation is misconfigured"}})
    policy = TokenPolicy(doors.webhook_auth_audiences, doors.webhook_auth_issuers, doors.webhook_auth_role)
    try:
        verify_bearer(req.headers.get("authorization"), policy, keys)
    except TokenRejected as exc:
        log.warning("webhook request refused: %s", exc)
        return Reply(401, {"error": {"code": "UNAUTHORIZED", "message": "a valid bearer token is required"}},
                     {"WWW-Authenticate": "Bearer"})
    return None


def to_response(reply: Reply) -> func.HttpResponse:
    body = reply.body_bytes()
    return func.HttpResponse(body if body else None, status_code=reply.status, headers=reply.headers,
                             mimetype="application/json" if body else None)


def handle(req: func.HttpRequest) -> func.HttpResponse:
    if req.method.upper() == "OPTIONS":
        return to_response(options_reply(req.headers))
    app = current_app()
    doors = app.settings.doors
    policy = policy_from(doors)
    refused = check_token(req, doors, app.token_keys)
    if refused is not None:
        return to_response(refused)
    body = req.get_body()
    note_input(len(body))  # large bodies: cyclic garbage collected by bytes, not only by object count
    decision = decide_post(req.headers, body, policy)
    if isinstance(decision, Reply):
        return to_response(decision)
    assert isinstance(decision, Deliver)
    try:
        report = run_batch("eventgrid_webhook", decision.events, app.pipeline.process)
    except TransientError as exc:  # e.g. the quarantine store is down: nothing may be lost, so send it again
        log.warning("webhook batch of %d must come again: %s", len(decision.events), exc)
        return to_response(transient_reply(str(exc), policy))
    return to_response(batch_reply(report, policy))


@bp.function_name("eventgrid_webhook")
@bp.route(route="eventgrid", methods=["POST", "OPTIONS"], auth_level=func.AuthLevel.FUNCTION)
def eventgrid_webhook(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req)
