"""Credential redaction for telemetry attributes and approval requests."""

from __future__ import annotations

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
    ],
)
def test_credentials_inside_text_are_scrubbed(
    text: str, secret: str, kept: str
) -> None:
    out = scrub_text(text)
    assert secret not in out and REDACTED in out and kept in out


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens=256 tokens=12 token_count=3",
        "see http://host:8080/path",
        "keyboard: qwerty",
    ],
)
def test_text_without_credentials_is_kept(text: str) -> None:
    assert scrub_text(text) == text


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
