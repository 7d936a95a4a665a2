"""The Open Inference Protocol endpoint, driven by Triton's own client and perf_analyzer.

`tritonclient` pins protobuf and numpy older than ours, so it lives in its own environment
(`.venv-triton`, made by `.ci/run`) and runs as a subprocess
(`tests/server/oip_with_tritonclient.py`); perf_analyzer is the C++ load generator from the
same package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from attnserve.service.client.client import EmbedderClient
from tests.support import ROOT
from tests.support.cli import unavailable
from tests.support.servers import MakeServer, ServerThread, server_settings
from tests.support.texts import LONG_TEXT, tail_of

MODEL = "all-MiniLM-L6-v2"
TEXTS = ["The bank by the river", "Interest rates at the bank rose", "a"]
TRITON_PYTHON = ROOT / ".venv-triton" / "bin" / "python"
PERF_ANALYZER = ROOT / ".venv-triton" / "bin" / "perf_analyzer"


@pytest.fixture(scope="module")
def server(artifact_dir: Path) -> Iterator[ServerThread]:
    """This file's own server (the session's is shared with other files' OIP traffic, which
    would change the statistics this file checks)."""
    running = ServerThread(server_settings(artifact_dir))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def report(server: ServerThread) -> dict[str, object]:
    if not TRITON_PYTHON.exists():
        unavailable("no .venv-triton with tritonclient[grpc] (bash .ci/run makes it)")
    result = subprocess.run(
        [str(TRITON_PYTHON), str(Path(__file__).parent / "oip_with_tritonclient.py"),
         server.target, MODEL, *TEXTS],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "LONG_TEXT": LONG_TEXT},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    loaded: dict[str, object] = json.loads(result.stdout)
    return loaded


def expected(server: ServerThread, **options: object) -> np.ndarray:
    with EmbedderClient(server.target) as client:
        pooled = client.embed(TEXTS, **options).pooled  # type: ignore[arg-type]
    assert pooled is not None
    return np.asarray(pooled)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)))


def test_health_and_metadata_calls(report: dict[str, object]) -> None:
    assert report["live"] is True
    assert report["ready"] is True
    assert report["model_ready"] is True
    assert report["other_model_ready"] is False
    server = report["server"]
    assert isinstance(server, dict)
    assert server["name"] == "attnserve"
    metadata = report["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["name"] == MODEL
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": ["-1", "1"]}]
    assert metadata["outputs"][0]["shape"] == ["-1", "384"]
    assert [(o["name"], o["datatype"]) for o in metadata["outputs"]] == [
        ("embedding", "FP32"), ("token_count", "INT32"), ("truncated", "BOOL"),
    ]  # fmt: skip
    config = report["config"]
    assert isinstance(config, dict)
    assert config["input"][0]["data_type"] == "TYPE_STRING"
    assert config["output"][0]["dims"] == ["384"]
    # One value per text: dims [1] sent as [] (reshape), as Triton writes it.
    assert [(o["name"], o["data_type"]) for o in config["output"][1:]] == [
        ("token_count", "TYPE_INT32"), ("truncated", "TYPE_BOOL"),
    ]  # fmt: skip
    assert all(o["dims"] == ["1"] and "reshape" in o for o in config["output"][1:])
    assert int(config["max_batch_size"]) >= 8


def test_raw_and_typed_infer_equal_the_grpc_api(
    report: dict[str, object], server: ServerThread
) -> None:
    want = expected(server)
    for form in ("raw", "typed"):
        got = np.array(report[form], dtype=np.float32)
        assert got.shape == (3, 384), form
        assert cosines(got, want).min() >= 0.999999, form


def test_parameters_reach_the_pipeline(report: dict[str, object], server: ServerThread) -> None:
    got = np.array(report["raw_64_unnormalised"], dtype=np.float32)
    want = expected(server, normalize=False)[:, :64]
    assert got.shape == (3, 64)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_token_counts_and_truncated_flags_come_back_beside_the_vectors(
    report: dict[str, object], server: ServerThread
) -> None:
    """Triton's client reads the INT32 and BOOL outputs; cutting the start keeps the end."""
    counted = report["counted"]
    assert isinstance(counted, dict)
    with EmbedderClient(server.target) as client:
        served = client.embed([*TEXTS, LONG_TEXT], truncate="start")
        tail = client.embed([tail_of(LONG_TEXT, 254)], truncate="none")
    assert counted["token_count"] == served.token_counts
    assert counted["token_count"][-1] == 256
    assert counted["truncated"] == [False, False, False, True]
    assert tail.pooled is not None
    got = np.array(counted["embedding"], dtype=np.float32)
    np.testing.assert_allclose(got[-1], tail.pooled[0], atol=1e-5)


def test_bad_input_gets_the_protocols_errors(report: dict[str, object]) -> None:
    errors = report["errors"]
    assert isinstance(errors, dict)
    assert errors["wrong_input"]["status"] == "StatusCode.INVALID_ARGUMENT"
    assert "expected one input named 'text'" in errors["wrong_input"]["message"]
    assert errors["empty_text"]["status"] == "StatusCode.INVALID_ARGUMENT"
    assert errors["unknown_model"]["status"] == "StatusCode.NOT_FOUND"


def test_statistics_add_up(report: dict[str, object]) -> None:
    statistics = report["statistics"]
    assert isinstance(statistics, dict)
    (entry,) = statistics["model_stats"]
    stats = entry["inference_stats"]
    # Three successful infer calls of 3 texts each (raw, typed, raw with parameters) and
    # three failures, as the client script made them (this file's own server: it alone sends
    # OIP traffic to it).
    assert int(entry["inference_count"]) == 9
    assert int(stats["success"]["count"]) == 3
    assert int(stats["fail"]["count"]) == 3
    assert int(entry["execution_count"]) >= 3
    assert int(stats["queue"]["count"]) == int(stats["compute_infer"]["count"]) == 3
    assert int(stats["success"]["ns"]) >= int(stats["compute_infer"]["ns"]) > 0


def test_perf_analyzer_drives_the_endpoint(make_server: MakeServer, tmp_path: Path) -> None:
    if not PERF_ANALYZER.exists():
        unavailable("no perf_analyzer in .venv-triton (bash .ci/run makes it)")
    running = make_server()
    data = tmp_path / "input.json"
    data.write_text(json.dumps({"data": [{"text": [t]} for t in TEXTS]}))
    cuda_runtime = next(
        (ROOT / ".venv-triton" / "lib").glob("python3*/site-packages/nvidia/cuda_runtime/lib")
    )
    result = subprocess.run(
        [str(PERF_ANALYZER), "-m", MODEL, "-i", "grpc", "-u", running.target,
         "--input-data", str(data), "--concurrency-range", "2", "--request-count", "40"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "LD_LIBRARY_PATH": str(cuda_runtime)},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Throughput:" in output
    sys.stdout.write("perf_analyzer against attnserve's OIP endpoint:\n" + output[-600:])
