"""Build an artifact directory: graphs, tokenizer and a manifest the server can trust.

The directory is assembled under a temporary name and renamed into place at the end, so a
crashed or interrupted export never leaves something that looks like a finished artifact.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from attnserve.export.graphs import build_graphs
from attnserve.export.progress import stage
from attnserve.export.retrieval_graphs import (
    RetrievalHeads,
    RetrievalModel,
    bge_m3_heads,
    build_retrieval_graph,
    colbert_heads,
    splade_heads,
)
from attnserve.export.score_graphs import build_score_graphs
from attnserve.model.bge_m3 import is_bge_m3, load_bge_m3
from attnserve.model.checkpoint import Checkpoint, default_checkpoint_dir, load_checkpoint
from attnserve.model.colbert import is_colbert, load_colbert
from attnserve.model.cross_encoder import is_sequence_classifier, load_cross_encoder
from attnserve.model.decoder_config import DecoderConfig
from attnserve.model.splade import is_splade, load_splade
from attnserve.service.artifact import (
    EMBEDDER_FORMAT_VERSION,
    FORMAT_VERSION,
    MANIFEST_FILE,
    RETRIEVAL_FORMAT_VERSION,
    GraphSpec,
    HeadSpec,
    Manifest,
    ModelSpec,
    TokenizerSpec,
    describe_file,
)

log = logging.getLogger(__name__)
TOKENIZER_FILE = "tokenizer.json"
TOOL_PACKAGES = ("attnserve", "torch", "onnx", "onnxruntime", "onnxscript", "tokenizers", "numpy")


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in TOOL_PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return versions


def tokenizer_spec(checkpoint: Checkpoint) -> TokenizerSpec:
    raw = json.loads(checkpoint.tokenizer_path.read_text())
    normalizer = raw.get("normalizer") or {}
    return TokenizerSpec(
        file=TOKENIZER_FILE,
        default_max_tokens=checkpoint.max_seq_length,
        pad_token_id=checkpoint.config.pad_token_id,
        lowercase=bool(normalizer.get("lowercase", False)),
    )


def model_spec(checkpoint: Checkpoint) -> ModelSpec:
    config = checkpoint.config
    return ModelSpec(
        name=checkpoint.name,
        source=str(checkpoint.directory),
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        max_positions=config.max_tokens,  # the usable rows: a hard token limit
        vocab_size=config.vocab_size,
        pooling=config.pooling,
        normalize=config.normalize,
        family=config.family,
        causal=config.causal,
        num_kv_heads=config.num_kv_heads if isinstance(config, DecoderConfig) else None,
        prompts=checkpoint.prompts,
        default_prompt_name=checkpoint.default_prompt_name,
    )


def load_retrieval(directory: Path) -> tuple[RetrievalModel, Checkpoint, RetrievalHeads] | None:
    """A SPLADE, bge-m3 or ColBERT folder's model and what its manifest says; None: another."""
    if is_splade(directory):
        splade, checkpoint = load_splade(directory)
        return splade, checkpoint, splade_heads(splade)
    if is_bge_m3(directory):
        m3, checkpoint = load_bge_m3(directory)
        return m3, checkpoint, bge_m3_heads(m3, directory)
    if is_colbert(directory):
        colbert, checkpoint, spec = load_colbert(directory)
        return colbert, checkpoint, colbert_heads(spec)
    return None


def build_artifact(
    out_dir: Path, checkpoint_dir: Path | None = None, *, int8: bool = True, fp16: bool = True
) -> Manifest:
    """Export a checkpoint (default: the packaged all-MiniLM-L6-v2) into `out_dir`: an embedder,
    a cross-encoder (a `*ForSequenceClassification` checkpoint: scoring graphs) or a retrieval
    head (SPLADE, bge-m3, ColBERT: one graph with the model's outputs)."""
    started = time.perf_counter()
    directory = checkpoint_dir or default_checkpoint_dir()
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    head: HeadSpec | None = None
    retrieval: tuple[RetrievalModel, Checkpoint, RetrievalHeads] | None = None
    graphs: list[GraphSpec]
    with stage("load", "checkpoint") as step:
        retrieval = load_retrieval(directory)
        if retrieval is not None:
            checkpoint = retrieval[1]
        elif is_sequence_classifier(directory):
            scorer, checkpoint, head = load_cross_encoder(directory)
        else:
            model, checkpoint = load_checkpoint(directory)
        config = checkpoint.config
        step.outcome = (
            f"{checkpoint.name}: {config.num_layers} layers x {config.num_heads} heads, "
            f"{config.hidden_size} dims"
            + ("" if head is None else f", a head of {len(head.labels)} label(s)")
            + ("" if retrieval is None else f", outputs {', '.join(retrieval[2].outputs)}")
        )
    if retrieval is not None:
        graphs = build_retrieval_graph(
            retrieval[0], retrieval[2], checkpoint.tokenizer_path, checkpoint.max_seq_length,
            staging,
        )  # fmt: skip
    elif head is not None:
        graphs = build_score_graphs(
            scorer, checkpoint.tokenizer_path, checkpoint.max_seq_length, staging, int8=int8,
            fp16=fp16,
        )  # fmt: skip
    else:
        graphs = build_graphs(
            model, checkpoint.tokenizer_path, checkpoint.max_seq_length, staging, int8=int8,
            fp16=fp16,
        )  # fmt: skip
    with stage("write", MANIFEST_FILE) as step:
        shutil.copyfile(checkpoint.tokenizer_path, staging / TOKENIZER_FILE)
        files = {p.name: describe_file(p) for p in sorted(staging.iterdir()) if p.is_file()}
        version = EMBEDDER_FORMAT_VERSION if head is None else FORMAT_VERSION
        heads = None if retrieval is None else retrieval[2]
        manifest = Manifest(
            format_version=version if heads is None else RETRIEVAL_FORMAT_VERSION,
            model=model_spec(checkpoint),
            tokenizer=tokenizer_spec(checkpoint),
            graphs=tuple(graphs),
            files=files,
            tools=tool_versions(),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            head=head,
            sparse=None if heads is None else heads.sparse,
            multi_vector=None if heads is None else heads.multi_vector,
            dense=True if heads is None else heads.dense,
        )
        # An embedder's manifest stays version 2 to the letter: no `head` key at all (nor the
        # retrieval heads' keys, which only a version-5 manifest writes).
        later = {"sparse", "multi_vector", "dense"}
        unwritten = ({"head"} if head is None else set()) | (later if heads is None else set())
        text = manifest.model_dump_json(indent=2, exclude=unwritten)
        (staging / MANIFEST_FILE).write_text(text + "\n")
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.rename(out_dir)
        step.outcome = f"sha256 of every file; {len(files)} files in {out_dir}"
    log.debug("artifact %s built in %.1f s", out_dir, time.perf_counter() - started)
    return manifest
