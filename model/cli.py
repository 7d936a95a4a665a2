"""`attnserve embed-local`: embed texts in-process with the PyTorch reference model (any family
`model/families.py` knows).

This is the reference path for everything downstream (export parity, served embeddings); it is a
plugin of the `attnserve` command so the serving install never imports torch. Registering it
imports nothing heavy: torch and the model come in when `embed-local` runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attnserve.model.checkpoint import Checkpoint


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "embed-local",
        help="embed texts in-process with the PyTorch reference model (needs the export extra)",
        description=__doc__,
    )
    parser.add_argument("texts", nargs="+", help="texts to embed ('-' reads one per stdin line)")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="checkpoint directory (default: the packaged all-MiniLM-L6-v2)",
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="truncate texts to this many tokens (default: the checkpoint's "
        "max_seq_length, 256 for all-MiniLM-L6-v2)",
    )
    parser.add_argument("--no-normalize", action="store_true", help="skip L2 normalisation")
    parser.add_argument(
        "--prompt-name",
        default=None,
        help="instruction prompt to prepend, by name from the checkpoint's sentence-transformers "
        "config (e.g. 'query'); default: its default prompt; '' for none",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="save pooled embeddings as a .npy file instead of printing JSON",
    )
    parser.set_defaults(handler=run)


def read_texts(args_texts: list[str]) -> list[str]:
    if args_texts == ["-"]:
        return [line.rstrip("\n") for line in sys.stdin if line.strip()]
    return args_texts


def prompt_text(checkpoint: Checkpoint, name: str | None) -> str:
    """The named prompt's text, as sentence-transformers resolves `prompt_name`."""
    from attnserve.model.checkpoint import CheckpointError

    name = checkpoint.default_prompt_name if name is None else name
    if not name:
        return ""
    if name not in checkpoint.prompts:
        known = ", ".join(sorted(checkpoint.prompts)) or "none"
        raise CheckpointError(f"prompt {name!r} is not in the checkpoint (its prompts: {known})")
    return checkpoint.prompts[name]


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from attnserve.model.checkpoint import CheckpointError, load_checkpoint
    from attnserve.model.tokenization import ReferenceTokenizer

    try:
        model, checkpoint = load_checkpoint(args.checkpoint)
        prompt = prompt_text(checkpoint, args.prompt_name)
    except CheckpointError as exc:
        print(f"attnserve embed-local: {exc}", file=sys.stderr)
        return 2
    tokenizer = ReferenceTokenizer(
        checkpoint.tokenizer_path,
        args.max_tokens or checkpoint.max_seq_length,
        checkpoint.config.pad_token_id,
    )
    texts = read_texts(args.texts)
    batch = tokenizer([prompt + text for text in texts])
    with torch.inference_mode():
        output = model(**batch, normalize=False if args.no_normalize else None)
    pooled = output.pooled.numpy().astype(np.float32)
    if args.out is not None:
        np.save(args.out, pooled)
        print(f"saved {pooled.shape[0]} x {pooled.shape[1]} float32 embeddings to {args.out}")
        return 0
    token_counts = batch["attention_mask"].sum(dim=1).tolist()
    for text, vector, count in zip(texts, pooled, token_counts, strict=True):
        record = {"text": text, "tokens": count, "embedding": [round(float(v), 7) for v in vector]}
        print(json.dumps(record, ensure_ascii=False))
    return 0
