"""One typed settings object: flags over environment over defaults, validated at start."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from attnserve.service.cli import build_parser
from attnserve.service.server.cli import settings_from_args
from attnserve.service.server.settings import Settings, settings_table
from tests.support import ROOT


def test_flags_win_over_environment_over_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTNSERVE_MAX_WAIT_MS", "7.5")
    monkeypatch.setenv("ATTNSERVE_PORT", "6000")
    args = build_parser().parse_args(["serve", "--port", "7000"])
    settings = settings_from_args(args)
    assert settings.port == 7000  # flag
    assert settings.max_wait_ms == 7.5  # environment
    assert settings.max_batch_texts == Settings.model_fields["max_batch_texts"].default


def test_tokens_from_the_environment_are_split_and_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTNSERVE_AUTH_TOKENS", "alpha-secret, beta-secret")
    settings = Settings()
    assert [t.get_secret_value() for t in settings.auth_tokens] == ["alpha-secret", "beta-secret"]
    assert "alpha-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--port", "70000"], "port"),
        (["--tls-cert", "/nonexistent.pem"], "tls_cert and tls_key must be set together"),
        (["--precision", "int4"], "precision"),
        (["--max-batch-texts", "0"], "max_batch_texts"),
        (["--artifact", "/no/such/dir"], "is not a directory"),
        (["--max-queue-texts", "8", "--max-texts-per-request", "16"], "could never be queued"),
    ],
)
def test_bad_settings_stop_the_server_with_a_clear_message(flags: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "attnserve.service.cli", "serve", *flags],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "invalid settings" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_default_document_limit_follows_a_smaller_queue() -> None:
    """A queue smaller than the default rerank limit is an ordinary setting, not an error: the
    unset limit shrinks to the queue; one set explicitly past the queue is refused."""
    small = Settings(max_queue_texts=64, max_texts_per_request=32)
    assert small.max_documents_per_request == 64
    assert Settings().max_documents_per_request == 1000
    # The texts' limit too: OpenAI's 2,048 by default, the queue's size under a smaller queue.
    assert Settings().max_texts_per_request == 2048
    assert Settings(max_queue_texts=1000).max_texts_per_request == 1000
    with pytest.raises(ValidationError, match="max_documents_per_request"):
        Settings(max_queue_texts=64, max_texts_per_request=32, max_documents_per_request=100)


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(no_such_setting=1)  # type: ignore[call-arg]


def test_the_settings_page_documents_every_setting() -> None:
    page = (ROOT / "docs" / "settings.md").read_text()
    assert settings_table() in page, "docs/settings.md is stale: paste settings_table()"
    for name in Settings.model_fields:
        assert f"`ATTNSERVE_{name.upper()}`" in page
