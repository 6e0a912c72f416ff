"""Console sign-in through an OpenID Connect issuer: the authorization code flow with PKCE
(S256), by authlib's Starlette client, which keeps the state, the PKCE verifier and the nonce
in a short-lived signed cookie (path `/console/oidc`, SameSite=Lax: the issuer's redirect back
is a cross-site navigation) and checks the ID token's signature and nonce.

The session's scopes are those of the access token, checked exactly as the API checks a
bearer token (`API_AUTH_JWT_*`): the person gets in the console what the same token would get
from the API. The session ends when the token would have.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import UTC, datetime

from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware

from journeys_api.console import pages
from journeys_api.console.sessions import Sessions, set_cookie
from journeys_api.settings import ApiSettings

log = logging.getLogger(__name__)

STATE_COOKIE = "pj-console-oidc"
STATE_SECONDS = 600
router = APIRouter(prefix="/console/oidc", include_in_schema=False)


def install(app: FastAPI, settings: ApiSettings) -> None:
    """Sign-in through the issuer, when one is configured."""
    if settings.console_oidc_issuer is None:
        app.state.console_oidc = None
        return
    oauth = OAuth()
    secret = settings.console_oidc_client_secret
    # A confidential client authenticates at the token endpoint; a public one has PKCE alone.
    method = "client_secret_basic" if secret is not None else "none"
    oauth.register(
        "console",
        client_id=settings.console_oidc_client_id,
        client_secret=secret.get_secret_value() if secret is not None else None,
        server_metadata_url=(
            f"{settings.console_oidc_issuer.rstrip('/')}/.well-known/openid-configuration"
        ),
        client_kwargs={
            "scope": settings.console_oidc_scopes,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": method,
        },
    )
    app.state.console_oidc = oauth.create_client("console")
    # The replicas share the deployment's secret: a sign-in may come back to another one. A
    # key of its own, derived, so this cookie's signature says nothing of the patient keys.
    state_key = hmac.new(settings.patient_key_secret.get_secret_value().encode(),
                         b"console oidc state", hashlib.sha256).hexdigest()  # fmt: skip
    app.add_middleware(
        SessionMiddleware, secret_key=state_key, session_cookie=STATE_COOKIE,
        path="/console/oidc", same_site="lax", https_only=settings.console_cookie_secure,
        max_age=STATE_SECONDS,
    )  # fmt: skip
    app.include_router(router)


def _callback_url(request: Request, settings: ApiSettings) -> str:
    base = settings.console_public_url or str(request.base_url)
    return f"{base.rstrip('/')}/console/oidc/callback"


@router.get("/start")
async def start(request: Request) -> Response:
    settings: ApiSettings = request.app.state.resources.settings
    client = request.app.state.console_oidc
    try:
        answer: Response = await client.authorize_redirect(
            request, _callback_url(request, settings)
        )
    except (OAuthError, OSError, ValueError) as exc:
        log.warning("console sign-in: the issuer is out of reach",
                    extra={"error": type(exc).__name__})  # fmt: skip
        raise pages.PageError(503, "the sign-in service is out of reach: try again shortly",
                              headers={"Retry-After": "5"}) from None  # fmt: skip
    return answer


@router.get("/callback")
async def callback(request: Request) -> Response:
    settings: ApiSettings = request.app.state.resources.settings
    client = request.app.state.console_oidc
    try:
        token = await client.authorize_access_token(request)
    except OAuthError as exc:
        log.info("console sign-in refused by the issuer", extra={"error": exc.error})
        return pages.render(request, "sign_in.html", status=401,
                            error=f"sign-in refused ({exc.error})")  # fmt: skip
    try:
        principal = await request.app.state.authenticator.principal(token["access_token"], None)
    except HTTPException as exc:
        if exc.status_code not in (400, 401):
            raise
        return pages.render(request, "sign_in.html", status=401,
                            error=f"the issuer's token was refused: {exc.detail}")  # fmt: skip
    until = token.get("expires_at")
    sessions: Sessions = request.app.state.console_sessions
    cookie = await sessions.open(
        principal, until=datetime.fromtimestamp(until, UTC) if until else None
    )
    log.info("console sign-in", extra={"subject": principal.subject})
    # A page, not a redirect: the browser came here from the issuer's site, and would not send
    # a SameSite=Strict cookie on a redirect it follows from there. The page's own link (or
    # its refresh) is a navigation from our origin, which does.
    response: HTMLResponse = pages.render(request, "signed_in.html")
    set_cookie(response, cookie, settings.console_cookie_secure, settings.console_session_hours)
    return response
