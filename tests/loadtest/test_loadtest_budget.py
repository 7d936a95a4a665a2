"""The load test runs for the duration it is given, shows its defaults, and fails the run past
its error budget (a load tool that exits 0 when most requests failed hides the failure)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from attnserve.service.cli import build_parser
from attnserve.service.client.channel import Connection
from attnserve.service.loadtest.generator import LoadConfig, shares
from tests.support.cli import run_cli
from tests.support.servers import MakeServer


def test_the_duration_is_not_cut_by_a_hidden_request_bound(
    known_latency_server: str,
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "fast.txt"
    corpus.write_text("0.0005\n")  # the test server answers each request in 0.5 ms
    out = tmp_path / "run.json"
    result = run_cli(
        "loadtest", "--target", known_latency_server, "--duration", "3", "--warmup", "0",
        "--concurrency", "16", "--corpus", str(corpus), "--json", str(out), "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text())
    assert document["elapsed_s"] >= 3.0
    assert document["sent"] > 1000  # the old hidden default bound


def test_a_run_past_its_error_budget_fails(make_server: MakeServer) -> None:
    refusing = make_server(auth_tokens="only-this-token")
    common = ("loadtest", "--target", refusing.target, "--duration", "1", "--warmup", "0",
              "--concurrency", "2", "--no-progress")  # fmt: skip
    failed = run_cli(*common)
    assert failed.returncode == 1, failed.stderr
    assert "error budget" in failed.stderr
    assert "UNAUTHENTICATED" in failed.stdout
    tolerated = run_cli(*common, "--max-error-rate", "1")
    assert tolerated.returncode == 0, tolerated.stderr
    authorised = run_cli(*common, "--token", "only-this-token")
    assert authorised.returncode == 0, authorised.stderr


def test_no_request_bound_keeps_every_load_process() -> None:
    config = LoadConfig(connection=Connection("localhost:1"), processes=3, concurrency=6)
    assert config.requests == 0
    assert [share.requests for share in shares(config)] == [0, 0, 0]


def test_every_help_shows_its_defaults() -> None:
    parser = build_parser()
    (subcommands,) = [
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    ]
    for name, command in subcommands.choices.items():
        shown = command.format_help()
        for action in command._actions:
            default = action.default
            if (
                not action.option_strings
                or default is None
                or default is False
                or default == argparse.SUPPRESS
            ):
                continue
            if isinstance(default, list | tuple) and not default:
                continue
            said = "default" in (action.help or "")
            shown_default = f"(default: {default})" in " ".join(shown.split())
            assert said or shown_default, f"attnserve {name} {action.option_strings[0]}"
