"""Optional Entra bearer-token check: real RS256 tokens (PyJWT + cryptography), JWKS served through `responses`."""

from __future__ import annotations

import json
import time

import jwt
import orjson
import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import rsa

from functions import eventgrid_webhook as door
from shared.settings.doors import DoorSettings
from tests.functions.helpers import as_eventgrid_wire, post
from tests.support import event_factory as factory
from tests.support.rig import make_app

JWKS_URL = "https://login.microsoftonline.com/tenant-1/discovery/v2.0/keys"
AUDIENCE = "api://twinbridge-webhook"
ISSUER = "https://login.microsoftonline.com/tenant-1/v2.0"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks() -> dict:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    return {"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}


def token(key=KEY, kid="k1", **claims) -> str:
    now = int(time.time())
    body = {"aud": AUDIENCE, "iss": ISSUER, "iat": now, "nbf": now, "exp": now + 600,
            "roles": ["AzureEventGridSecureWebhookSubscriber"], **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def secured(install):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(JWKS_URL, json=jwks())
        app = make_app(doors=DoorSettings(webhook_auth_audiences=(AUDIENCE,), webhook_auth_issuers=(ISSUER,),
                                          webhook_auth_jwks_url=JWKS_URL))
        install(app)
        yield app, mock


BODY = orjson.dumps([as_eventgrid_wire(factory.telemetry("dev-auth", {"temperature": 2.0}))])


def test_valid_token_is_accepted(secured):
    response = door.eventgrid_webhook(post(BODY, {"Authorization": f"Bearer {token()}"}))
    assert response.status_code == 200


@pytest.mark.parametrize("authorization", [
    None,
    "Bearer not-a-jwt",
    f"Bearer {token(aud='api://someone-else')}",
    f"Bearer {token(iss='https://sts.windows.net/other-tenant/')}",
    f"Bearer {token(exp=int(time.time()) - 3600)}",
    f"Bearer {token(roles=['Reader'])}",
    f"Bearer {token(key=OTHER_KEY)}",
    f"Bearer {token(kid='unknown')}",
])
def test_bad_or_missing_tokens_get_401_and_nothing_is_written(secured, authorization):
    app, _ = secured
    headers = {"Authorization": authorization} if authorization else {}
    response = door.eventgrid_webhook(post(BODY, headers))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert list(app.twins.list_twins()) == []


def test_hs256_token_signed_with_the_public_key_is_refused(secured):
    forged = jwt.encode({"aud": AUDIENCE, "iss": ISSUER, "exp": int(time.time()) + 60}, "s" * 48, algorithm="HS256",
                        headers={"kid": "k1"})
    assert door.eventgrid_webhook(post(BODY, {"Authorization": f"Bearer {forged}"})).status_code == 401
