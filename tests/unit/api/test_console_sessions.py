"""The console session's CSRF check and scopes (pure parts; sign-in is tested in a browser)."""

from __future__ import annotations

from journeys_api.auth import Principal, Scope
from journeys_api.console.sessions import COOKIE, PLAIN_COOKIE, Session, cookie_name


def test_the_csrf_token_must_match_exactly() -> None:
    session = Session(Principal("key:ops", frozenset({Scope.RUNS_READ})), csrf="s3cret-token")
    assert session.csrf_matches("s3cret-token")
    for sent in (None, "", "s3cret-toke", "s3cret-token ", "S3CRET-TOKEN"):
        assert not session.csrf_matches(sent)


def test_scopes_are_the_principal_s() -> None:
    session = Session(Principal("key:ops", frozenset({Scope.RUNS_READ})), csrf="t")
    assert session.may(Scope.RUNS_READ)
    assert not session.may(Scope.RUNS_CANCEL)


def test_the_cookie_is_host_bound_when_secure() -> None:
    assert cookie_name(True) == COOKIE
    assert COOKIE.startswith("__Host-")
    assert cookie_name(False) == PLAIN_COOKIE
