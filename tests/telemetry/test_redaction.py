"""Credential redaction for telemetry attributes and approval requests."""

from __future__ import annotations

from typing import Any

import pytest

from spark_core.telemetry.redaction import (
    REDACTED,
    is_sensitive_key,
    redact,
    scrub_text,
)


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "API-Key",
        "x-api-key",
        "Authorization",
        "password",
        "db_password",
        "client_secret",
        "access_token",
        "refresh_token",
        "auth",
        "session_token",
        "cookie",
        "private_key",
        "aws_access_key_id",
        "token",
        # camelCase and PascalCase read as snake case
        "accessToken",
        "refreshToken",
        "authToken",
        "apiToken",
        "privateKey",
        "accessKey",
        "APIKey",
        "XApiKey",
        # names ending in _key that hold keys
        "openai_key",
        "ssh_key",
        "signingKey",
    ],
)
def test_credential_names_are_sensitive(key: str) -> None:
    assert is_sensitive_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "tokens",
        "max_tokens",
        "prompt_tokens",
        "user_id",
        "path",
        "node_id",
        "author",
        "keyboard",
        "token_count",
        "tokenCount",
        "max_token",
        "maxTokens",
        "sort_key",
        "cache_key",
        "public_key",
        "key",
    ],
)
def test_ordinary_names_are_not(key: str) -> None:
    assert not is_sensitive_key(key)


def test_redact_recurses_and_keeps_the_input_intact() -> None:
    data = {
        "headers": {"Authorization": "Bearer abc"},
        "items": [{"password": "p"}, 1],
        "tokens": 10,
        "note": "ok",
    }
    out = redact(data)
    assert out == {
        "headers": {"Authorization": REDACTED},
        "items": [{"password": REDACTED}, 1],
        "tokens": 10,
        "note": "ok",
    }
    assert data["headers"] == {"Authorization": "Bearer abc"}


def test_secret_looking_values_are_scrubbed_whatever_the_key() -> None:
    out = redact(
        {
            "message": "call with Bearer abcdefghijkl0123 failed",
            "cfg": "key=sk-proj-ABCDEFGHIJKLMNOP1234",
        }
    )
    assert "abcdefghijkl0123" not in out["message"] and REDACTED in out["message"]
    assert "ABCDEFGHIJKLMNOP" not in out["cfg"]


@pytest.mark.parametrize(
    "text, secret, kept",
    [
        ("connect postgres://user:hunter2@db/app", "hunter2", "postgres://user:"),
        ("redis://:hunter2@cache:6379", "hunter2", "@cache:6379"),
        ("login failed: password=hunter2 for ana", "hunter2", "for ana"),
        ('{"api_key": "abc123", "n": 1}', "abc123", '"n": 1'),
        ("GET /cb?access_token=abc123&page=2", "abc123", "page=2"),
        ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz", "Authorization: "),
        ("client_secret: s3cr3t", "s3cr3t", "client_secret: "),
        # a password may contain "@": the host follows the last one
        ("postgres://admin:p@ssw0rd@db/app", "ssw0rd", "@db/app"),
        ("mysql://u:a@b@c@db:3306/x", "a@b@c", "u:[REDACTED]@db:3306/x"),
    ],
)
def test_credentials_inside_text_are_scrubbed(
    text: str, secret: str, kept: str
) -> None:
    out = scrub_text(text)
    assert secret not in out and REDACTED in out and kept in out


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            'log password="correct horse battery staple" ok',
            'log password="[REDACTED]" ok',
        ),
        ("cfg {'secret': 'two words', 'n': 1}", "cfg {'secret': '[REDACTED]', 'n': 1}"),
        ('{"token": "a\\"b c", "n": 1}', '{"token": "[REDACTED]", "n": 1}'),
        ('password="never closed', 'password="[REDACTED]'),
    ],
)
def test_a_quoted_secret_is_redacted_whole(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens=256 tokens=12 token_count=3",
        "limits: max_token=5 token_count=3 mytoken=7",
        "invalid token: a string was given",
        "error: missing password: ask the user",
        "see http://host:8080/path",
        "keyboard: qwerty",
    ],
)
def test_text_without_credentials_is_kept(text: str) -> None:
    assert scrub_text(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "a:" * 50_000,  # many pairs whose names are not sensitive
        "a://" + "b:" * 50_000,  # a URL whose password never reaches an "@"
        "password:" * 11_000,
        'token="' * 15_000,
        "password" + " " * 100_000,
        "invalid token: " * 7000,
    ],
)
def test_adversarial_text_is_read_a_bounded_number_of_times(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Steps: the characters the value pattern reads after names. Linear time means at most
    # a bounded number of reads per input character, whatever the input.
    from spark_core.telemetry import redaction

    pattern, read = redaction._SECRET_RE, [0]

    class Counting:
        def match(self, string: str, pos: int) -> Any:
            found = pattern.match(string, pos)
            read[0] += found.end() - pos if found is not None else 1
            return found

    monkeypatch.setattr(redaction, "_SECRET_RE", Counting())
    scrub_text(text)
    assert read[0] <= len(text)


def test_extra_keys_truncation_and_non_json_values() -> None:

    out = redact(
        {"tenant_pin": "1234", "blob": "x" * 50, "obj": object()},
        extra=["pin"],
        max_length=20,
    )
    assert out["tenant_pin"] == REDACTED
    assert out["blob"] == "x" * 20 + "...[truncated]"
    assert out["obj"].startswith("<object object")
    assert scrub_text("plain") == "plain"
    assert redact(None) == {}


def test_logging_filter_scrubs_whatever_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from spark_core.telemetry.redaction import RedactingFilter

    log = logging.getLogger("test.redaction")
    handler = caplog.handler
    handler.addFilter(RedactingFilter())
    try:
        with caplog.at_level(logging.INFO, logger="test.redaction"):
            log.info("calling with %s", "Authorization: Bearer abcdefghijklmnop")
            log.info(
                "cfg %(api_key)s %(user)s", {"api_key": "plain-secret", "user": "ana"}
            )
    finally:
        handler.removeFilter(handler.filters[-1])
    assert "abcdefghijklmnop" not in caplog.text and "plain-secret" not in caplog.text
    assert "[REDACTED]" in caplog.text and "ana" in caplog.text
