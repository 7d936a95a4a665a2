"""What every retrieval head's loader (SPLADE, bge-m3, ColBERT) shares: the files it needs and
the `Checkpoint` record it hands export (name, tokenizer, token cap)."""

from __future__ import annotations

import json
from pathlib import Path

from attnserve.model.checkpoint import Checkpoint, CheckpointError
from attnserve.model.encoder_config import EncoderConfig
from attnserve.model.st_config import read_max_seq_length


def require_files(directory: Path, *names: str) -> None:
    for required in ("config.json", "tokenizer.json", *names):
        if not (directory / required).is_file():
            raise CheckpointError(f"{directory}: {required} not found")


def encoder_checkpoint(
    directory: Path, config: EncoderConfig, cap: int | None = None
) -> Checkpoint:
    """The token cap: `cap` where the head says (ColBERT's document length), else
    sentence-transformers' own, else the position table."""
    cap = cap or read_max_seq_length(directory) or config.max_tokens
    return Checkpoint(
        directory=directory,
        name=directory.name,
        config=config,
        tokenizer_path=directory / "tokenizer.json",
        max_seq_length=min(cap, config.max_tokens),
    )


def special_token(directory: Path, role: str) -> str | None:
    """The tokenizer's token for a role (mask, unk, cls, ...), as transformers saves it."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = directory / name
        if path.is_file():
            value = json.loads(path.read_text()).get(f"{role}_token")
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                return value
    return None
