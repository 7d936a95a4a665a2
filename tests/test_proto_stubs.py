"""The public API stays honest: stubs fresh, every field and enum value documented."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from tests.support import ROOT

PROTO = ROOT / "proto" / "attnserve" / "v1" / "embedder.proto"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("proto_generate", ROOT / "proto" / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    generator = load_generator()
    for fresh in generator.generate(tmp_path):
        name = fresh.relative_to(tmp_path)
        committed = ROOT / "proto" / name
        assert committed.exists(), f"{name} is not committed: run python proto/generate.py"
        assert fresh.read_bytes() == committed.read_bytes(), (
            f"{name} is stale: run python proto/generate.py"
        )


FIELD = re.compile(r"^\s*(optional\s+|repeated\s+)?[\w.]+\s+\w+\s*=\s*\d+;")
ENUM_VALUE = re.compile(r"^\s*[A-Z][A-Z0-9_]*\s*=\s*\d+;")
RPC = re.compile(r"^\s*rpc\s+\w+")


def undocumented(lines: list[str]) -> list[str]:
    missing = []
    for number, line in enumerate(lines):
        if FIELD.match(line) or ENUM_VALUE.match(line) or RPC.match(line):
            if line.strip().startswith(("syntax", "package", "option")):
                continue
            if not lines[number - 1].strip().startswith("//"):
                missing.append(f"line {number + 1}: {line.strip()}")
    return missing


def test_every_field_enum_value_and_rpc_is_documented() -> None:
    lines = PROTO.read_text().splitlines()
    assert undocumented(lines) == []


def test_the_documentation_check_can_fail() -> None:
    assert undocumented(["message A {", "  string name = 1;", "}"]) == ["line 2: string name = 1;"]


@pytest.mark.parametrize("rpc", ["Embed", "EmbedStream", "Tokenize", "Info"])
def test_service_has_rpc(rpc: str) -> None:
    from attnserve.v1 import embedder_pb2

    service = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"]
    assert service.full_name == "attnserve.v1.Embedder"
    assert rpc in service.methods_by_name
