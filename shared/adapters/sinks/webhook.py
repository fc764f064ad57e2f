"""HTTP webhook sink (requests), for local runs: each message POSTed as a structured CloudEvent
(``application/cloudevents+json``), in order. 2xx = sent; 400/413/415/422 = refused for good; anything else
(other statuses, connection errors, timeouts) = retry later, and nothing after it is sent."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import requests

from shared.egress.ports import SENT, Delivery, Outgoing, Status
from shared.errors import Code, PermanentError, TransientError

PERMANENT_STATUS = frozenset({400, 413, 415, 422})


class WebhookSink:
    def __init__(self, url: str, *, timeout: float = 10.0, session: requests.Session | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self.session = session or requests.Session()

    def send(self, messages: Sequence[Outgoing]) -> list[Delivery]:
        deliveries: list[Delivery] = []
        for n, message in enumerate(messages):
            try:
                response = self.session.post(self.url, data=orjson.dumps(message.event), timeout=self.timeout,
                                             headers={"Content-Type": "application/cloudevents+json; charset=utf-8"})
            except requests.RequestException as exc:
                return deliveries + self._retry(len(messages) - n, f"{type(exc).__name__}: {exc}")
            if 200 <= response.status_code < 300:
                deliveries.append(SENT)
            elif response.status_code in PERMANENT_STATUS:
                code = Code.MESSAGE_TOO_LARGE if response.status_code == 413 else Code.DELIVERY_REJECTED
                deliveries.append(Delivery(Status.REJECTED, PermanentError(
                    code, f"{self.url}: HTTP {response.status_code}: {response.text[:200]}")))
            else:
                return deliveries + self._retry(len(messages) - n, f"HTTP {response.status_code}")
        return deliveries

    def _retry(self, count: int, reason: str) -> list[Delivery]:
        error = TransientError(Code.SINK_UNAVAILABLE, f"{self.url}: {reason}")
        return [Delivery(Status.RETRY, error)] * count

    def close(self) -> None:
        self.session.close()
