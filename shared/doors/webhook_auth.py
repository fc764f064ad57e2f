"""Optional Microsoft Entra bearer-token check for the webhook (Event Grid "secure webhook delivery").

When ``WEBHOOK_AUTH_AUDIENCE`` is set, every POST must carry ``Authorization: Bearer <JWT>`` that is signed by a key
of the configured JWKS (RS256 only), is within its validity window, has one of the configured audiences and
issuers, and — by default — carries the app role ``AzureEventGridSecureWebhookSubscriber`` that the Event Grid
service principal is assigned in the webhook's app registration. Keys come from a ``KeySource`` (the JWKS adapter
in ``shared/adapters/token_keys/entra_jwks.py`` fetches and caches them), so this module stays pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

# kid → public key (a PyJWK's .key); None when the kid is unknown even after a refresh.
KeySource = Callable[[str], Any]


class TokenRejected(Exception):
    """The request must be answered 401; the message says why (logged, not returned in detail)."""


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    audiences: tuple[str, ...]
    issuers: tuple[str, ...]
    role: str | None
    leeway_seconds: int = 120  # clock skew between Entra and this instance


def verify_bearer(authorization: str | None, policy: TokenPolicy, keys: KeySource) -> dict[str, Any]:
    """The token's claims, or TokenRejected."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise TokenRejected("no bearer token")
    token = authorization[7:].strip()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"not a JWT: {exc}") from None
    if header.get("alg") != "RS256":
        raise TokenRejected(f"algorithm {header.get('alg')!r} is not accepted")
    kid = header.get("kid")
    key = keys(kid) if isinstance(kid, str) else None
    if key is None:
        raise TokenRejected(f"signing key {kid!r} is not in the configured JWKS")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=["RS256"], audience=list(policy.audiences), leeway=policy.leeway_seconds,
            options={"require": ["exp", "iss", "aud"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"invalid token: {exc}") from None
    if policy.issuers and claims.get("iss") not in policy.issuers:
        raise TokenRejected(f"issuer {claims.get('iss')!r} is not accepted")
    if policy.role is not None:
        roles = claims.get("roles")
        if not isinstance(roles, list) or policy.role not in roles:
            raise TokenRejected(f"token lacks the app role {policy.role!r}")
    return claims
