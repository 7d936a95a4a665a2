"""What the engine asks of ONNX Runtime's providers: TF32 only where allowed, never for maps."""

from __future__ import annotations

import pytest

from attnserve.service.server.engine import CPU, CUDA, choose_providers, provider_options
from attnserve.service.server.errors import StartupError


def test_cuda_runs_exact_fp32_by_default_on_every_graph() -> None:
    for purpose in ("fast", "maps"):
        assert provider_options([CUDA, CPU], purpose, allow_tf32=False) == [
            {"use_tf32": "0"},
            {},
        ]


def test_allowing_tf32_reaches_the_fast_graph_only() -> None:
    assert provider_options([CUDA, CPU], "fast", allow_tf32=True)[0] == {"use_tf32": "1"}
    assert provider_options([CUDA, CPU], "maps", allow_tf32=True)[0] == {"use_tf32": "0"}


def test_the_cpu_provider_gets_no_cuda_options() -> None:
    assert provider_options([CPU], "fast", allow_tf32=True) == [{}]


def test_asking_for_cuda_where_there_is_none_stops_the_start() -> None:
    if CUDA in choose_providers("auto"):
        pytest.skip("this machine has CUDA")
    with pytest.raises(StartupError, match="--provider cuda"):
        choose_providers("cuda")
