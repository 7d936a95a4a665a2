"""Generate the Python stubs for attnserve's gRPC APIs beside their .proto files.

`attnserve/v1/embedder.proto` is attnserve's own API; `attnserve/oip/inference.proto` the Open
Inference Protocol as attnserve serves it; `attnserve/tei/tei.proto` text-embeddings-inference's
`tei.v1`, copied verbatim from TEI (its NOTICE says whence). Run after editing any:

    python proto/generate.py

The generated files are committed (clients import `attnserve.v1`); a test regenerates them into
a temporary folder and fails when the committed ones are stale.
"""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
PROTO_FILES = (
    "attnserve/v1/embedder.proto",
    "attnserve/oip/inference.proto",
    "attnserve/tei/tei.proto",
)
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generated_names() -> list[str]:
    return [proto.removesuffix(".proto") + s for proto in PROTO_FILES for s in GENERATED_SUFFIXES]


def generate(out_dir: Path) -> list[Path]:
    from grpc_tools import protoc

    well_known = str(files("grpc_tools") / "_proto")
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(PROTO_ROOT / proto) for proto in PROTO_FILES),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    return [out_dir / name for name in generated_names()]


def main() -> int:
    for path in generate(PROTO_ROOT):
        print(f"wrote {path.relative_to(PROTO_ROOT.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
