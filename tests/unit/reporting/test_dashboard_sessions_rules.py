"""The pure rules behind dashboard sign-ins: session lifetime and idle time, the Origin check, the policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reporting.browser import DEFAULT_POLICY, dashboard_policy, form_origin_allowed, origin_of, trusted_origins
from reporting.sessions import SessionPolicy, new_session_id, session_hash

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
POLICY = SessionPolicy(lifetime=timedelta(hours=8), idle=timedelta(minutes=30))


def test_a_session_lives_until_its_lifetime_or_its_idle_time_runs_out_whichever_comes_first() -> None:
    expires = POLICY.expires_at(T0)
    assert expires == datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
    assert POLICY.alive(expires, T0, T0 + timedelta(minutes=29, seconds=59))
    assert not POLICY.alive(expires, T0, T0 + timedelta(minutes=30))  # idle for 30 minutes
    seen = datetime(2026, 12, 1, 16, 50, tzinfo=UTC)
    assert POLICY.alive(expires, seen, datetime(2026, 12, 1, 16, 59, 59, tzinfo=UTC))
    assert not POLICY.alive(expires, seen, datetime(2026, 12, 1, 17, 0, tzinfo=UTC))  # used, but 8 h are up


def test_last_seen_is_written_at_most_once_a_minute() -> None:
    assert not POLICY.touch_due(T0, T0 + timedelta(seconds=59))
    assert POLICY.touch_due(T0, T0 + timedelta(seconds=60))


def test_session_ids_are_random_256_bit_and_stored_as_sha256() -> None:
    ids = {new_session_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 43 for i in ids)  # 32 bytes in unpadded base64url
    # SHA-256("abc") from FIPS 180-2, appendix B.1
    assert session_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize(
    ("origin", "referer", "allowed"),
    [
        ("https://reports.example.com", None, True),
        ("HTTPS://Reports.Example.com", None, True),
        ("https://reports.example.com:8443", None, False),
        ("http://reports.example.com", None, False),  # the same host over plain HTTP is another origin
        ("https://reports.example.com.evil.example", None, False),
        ("https://evil.example", "https://reports.example.com/v1/dashboard/login", False),  # Origin wins
        ("null", None, False),
        ("null", "https://reports.example.com/v1/dashboard", True),
        (None, "https://reports.example.com/v1/dashboard/login", True),
        (None, "https://evil.example/reports.example.com", False),
        (None, "not a url", False),
        (None, None, False),
        ("https://dashboards.partner.example", None, True),  # configured as trusted
    ],
)
def test_a_form_is_accepted_only_from_this_site_or_a_trusted_origin(
    origin: str | None, referer: str | None, allowed: bool
) -> None:
    trusted = trusted_origins(["https://dashboards.partner.example/some/path", "", "nonsense"])
    assert form_origin_allowed(origin, referer, "https://reports.example.com", trusted) is allowed


def test_origins_are_scheme_and_host_with_port() -> None:
    assert origin_of("https://Reports.example.com:8443/v1/x?y=1") == "https://reports.example.com:8443"
    assert origin_of("/relative") is None


def test_no_page_may_be_framed_and_the_dashboard_runs_only_its_own_nonce_script() -> None:
    for policy in (DEFAULT_POLICY, dashboard_policy("n0nce")):
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["frame-ancestors"] == "'none'"
        assert directives["default-src"] == "'none'"
        assert directives["base-uri"] == "'none'"
    assert "script-src" not in DEFAULT_POLICY  # the report HTML runs no script at all
    dashboard = dict(part.strip().split(" ", 1) for part in dashboard_policy("n0nce").split(";"))
    assert dashboard["script-src"] == "'nonce-n0nce'"
    assert dashboard["form-action"] == "'self'"
