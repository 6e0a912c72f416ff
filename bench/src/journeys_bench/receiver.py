"""`python -m journeys_bench.receiver PORT SECRET`: a messaging gateway for the delivery
benchmark, in a process of its own: it verifies every Standard Webhooks signature (as a real
receiver must), de-duplicates on `webhook-id`, answers 204, and reports its counts at GET
/stats."""

from __future__ import annotations

import sys

from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


def app(secret: str) -> web.Application:
    verifier = Webhook(secret)
    seen: set[str] = set()
    counts = {"received": 0, "attempts": 0, "bad_signatures": 0}

    async def receive(request: web.Request) -> web.Response:
        payload = await request.read()
        try:
            verifier.verify(payload, dict(request.headers))
        except WebhookVerificationError:
            counts["bad_signatures"] += 1
            return web.Response(status=401)
        counts["attempts"] += 1
        msg_id = request.headers["webhook-id"]
        if msg_id not in seen:
            seen.add(msg_id)
            counts["received"] += 1
        return web.Response(status=204)

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(counts)

    application = web.Application()
    application.router.add_post("/messages", receive)
    application.router.add_get("/stats", stats)
    return application


if __name__ == "__main__":
    web.run_app(app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), access_log=None,
                print=None)  # fmt: skip
