"""Each system's webhook signature scheme, against vectors computed outside the code under test.

- Jira (WebSub `sha256=<hex>`): GitHub documents this exact secret and body for the same construction;
  the digest is `printf 'Hello, World!' | openssl dgst -sha256 -hmac "It's a Secret to Everybody"`.
- Zendesk: the secret, body and timestamp of Zendesk's own verification example; the signature is
  `printf '%s' '2021-07-25T10:00:00Z{"say": "hello"}' | openssl dgst -sha256 -hmac '<secret>' -binary | base64`
  (base64(HMACSHA256(TIMESTAMP + BODY)), the webhooks page's formula).
- ServiceNow (our header, the same construction):
  `printf '%s' '1764979200{"number":"INC0010001"}' | openssl dgst -sha256 -hmac 'sn-shared-secret' -binary | base64`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from intake.domain.signatures import parse_timestamp, verify

WINDOW = timedelta(minutes=5)

JIRA_SECRET = b"It's a Secret to Everybody"
JIRA_BODY = b"Hello, World!"
JIRA_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

ZENDESK_SECRET = b"HRkRd4BeOAoUkfZr-mhauJT64rvBASlJRoIyPsd3zeA="
ZENDESK_BODY = b'{"say": "hello"}'
ZENDESK_TIMESTAMP = "2021-07-25T10:00:00Z"
ZENDESK_SIGNATURE = "Rry/4TtIdFyawtXXp8QdI6tlAUUQ/5kL1OTp5qo/ZIk="
ZENDESK_SENT = datetime(2021, 7, 25, 10, 0, tzinfo=UTC)

SERVICENOW_SECRET = b"sn-shared-secret"
SERVICENOW_BODY = b'{"number":"INC0010001"}'
SERVICENOW_TIMESTAMP = "1764979200"
SERVICENOW_SIGNATURE = "oCR2cb1pTjxBEV672XNn8PbNOa2jkXEZadpOSDySoEU="
SERVICENOW_SENT = datetime(2025, 12, 6, tzinfo=UTC)


def zendesk_headers(signature: str = ZENDESK_SIGNATURE, timestamp: str = ZENDESK_TIMESTAMP) -> dict[str, str]:
    return {"x-zendesk-webhook-signature": signature, "x-zendesk-webhook-signature-timestamp": timestamp}


def test_jira_documented_vector_verifies() -> None:
    verdict = verify("jira", [JIRA_SECRET], {"x-hub-signature": JIRA_SIGNATURE}, JIRA_BODY, ZENDESK_SENT, WINDOW)
    assert verdict.ok
    assert verdict.delivery is not None


def test_jira_signature_over_another_body_is_refused() -> None:
    verdict = verify("jira", [JIRA_SECRET], {"x-hub-signature": JIRA_SIGNATURE}, b"Hello, World?", ZENDESK_SENT, WINDOW)
    assert verdict.reason == "bad_signature"


def test_jira_signature_with_another_secret_is_refused() -> None:
    verdict = verify("jira", [b"another secret"], {"x-hub-signature": JIRA_SIGNATURE}, JIRA_BODY, ZENDESK_SENT, WINDOW)
    assert verdict.reason == "bad_signature"


def test_a_signature_verifies_under_a_rotated_secret_still_in_its_grace_period() -> None:
    verdict = verify(
        "jira", [b"the new secret", JIRA_SECRET], {"x-hub-signature": JIRA_SIGNATURE}, JIRA_BODY, ZENDESK_SENT, WINDOW
    )
    assert verdict.ok


def test_a_missing_signature_header_is_refused() -> None:
    assert verify("jira", [JIRA_SECRET], {}, JIRA_BODY, ZENDESK_SENT, WINDOW).reason == "missing_signature"
    assert (
        verify(
            "zendesk",
            [ZENDESK_SECRET],
            {"x-zendesk-webhook-signature-timestamp": ZENDESK_TIMESTAMP},
            ZENDESK_BODY,
            ZENDESK_SENT,
            WINDOW,
        ).reason
        == "missing_signature"
    )


def test_zendesk_documented_example_verifies_inside_the_window() -> None:
    verdict = verify(
        "zendesk", [ZENDESK_SECRET], zendesk_headers(), ZENDESK_BODY, ZENDESK_SENT + timedelta(minutes=4), WINDOW
    )
    assert verdict.ok


def test_zendesk_timestamp_outside_the_window_is_stale_either_way() -> None:
    late = verify(
        "zendesk",
        [ZENDESK_SECRET],
        zendesk_headers(),
        ZENDESK_BODY,
        ZENDESK_SENT + timedelta(minutes=5, seconds=1),
        WINDOW,
    )
    early = verify(
        "zendesk", [ZENDESK_SECRET], zendesk_headers(), ZENDESK_BODY, ZENDESK_SENT - timedelta(minutes=6), WINDOW
    )
    assert (late.reason, early.reason) == ("stale_timestamp", "stale_timestamp")


def test_zendesk_signature_does_not_move_to_another_timestamp() -> None:
    verdict = verify(
        "zendesk",
        [ZENDESK_SECRET],
        zendesk_headers(timestamp="2021-07-25T10:00:01Z"),
        ZENDESK_BODY,
        ZENDESK_SENT,
        WINDOW,
    )
    assert verdict.reason == "bad_signature"


def test_zendesk_signature_over_body_then_timestamp_is_not_accepted() -> None:
    # The event-connectors variant (BODY + TIMESTAMP) of the same example: a different scheme, refused here.
    verdict = verify(
        "zendesk",
        [ZENDESK_SECRET],
        zendesk_headers("tRDSF7URY8BLCDlaBcQ7FHu051Zk+aAB0NKMP53teMw="),
        ZENDESK_BODY,
        ZENDESK_SENT,
        WINDOW,
    )
    assert verdict.reason == "bad_signature"


def test_a_timestamp_that_is_not_a_time_is_refused() -> None:
    verdict = verify(
        "zendesk", [ZENDESK_SECRET], zendesk_headers(timestamp="yesterday"), ZENDESK_BODY, ZENDESK_SENT, WINDOW
    )
    assert verdict.reason == "bad_timestamp"


def test_servicenow_vector_verifies_with_unix_seconds() -> None:
    headers = {"x-slm-webhook-signature": SERVICENOW_SIGNATURE, "x-slm-webhook-timestamp": SERVICENOW_TIMESTAMP}
    assert verify("servicenow", [SERVICENOW_SECRET], headers, SERVICENOW_BODY, SERVICENOW_SENT, WINDOW).ok
    tampered = verify(
        "servicenow", [SERVICENOW_SECRET], headers, SERVICENOW_BODY.replace(b"1", b"2"), SERVICENOW_SENT, WINDOW
    )
    assert tampered.reason == "bad_signature"


def test_two_deliveries_have_different_replay_identities_and_a_repeat_the_same() -> None:
    first = verify("zendesk", [ZENDESK_SECRET], zendesk_headers(), ZENDESK_BODY, ZENDESK_SENT, WINDOW)
    again = verify("zendesk", [ZENDESK_SECRET], zendesk_headers(), ZENDESK_BODY, ZENDESK_SENT, WINDOW)
    jira = verify("jira", [JIRA_SECRET], {"x-hub-signature": JIRA_SIGNATURE}, JIRA_BODY, ZENDESK_SENT, WINDOW)
    assert first.delivery == again.delivery
    assert first.delivery != jira.delivery


def test_timestamps_parse_as_unix_seconds_or_rfc3339_with_an_offset_only() -> None:
    assert parse_timestamp("1764979200") == SERVICENOW_SENT
    assert parse_timestamp("2021-07-25T12:00:00+02:00") == ZENDESK_SENT
    assert parse_timestamp("2021-07-25T10:00:00") is None
