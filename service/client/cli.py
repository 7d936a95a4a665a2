"""Client subcommands: `attnserve embed` and `attnserve attend` against a running server."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import grpc
import numpy as np

from attnserve.service.client.channel import add_connection_flags, connection_from_args
from attnserve.service.client.client import EmbedderClient


def connect(args: argparse.Namespace) -> EmbedderClient:
    return EmbedderClient(connection_from_args(args))


def register_embed(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("embed", help="embed texts with a running server")
    parser.add_argument("texts", nargs="+", help="texts to embed")
    add_connection_flags(parser)
    parser.add_argument("--out", type=Path, default=None, help="save pooled vectors as .npy")
    parser.add_argument("--no-normalize", action="store_true", help="skip L2 normalisation")
    add_prompt_flag(parser)
    parser.set_defaults(handler=run_embed)


def add_prompt_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prompt-name",
        default=None,
        help="instruction prompt to prepend, by name (the server's Info lists them, e.g. "
        "'query'); default: the model's default prompt; '' for none",
    )


def run_embed(args: argparse.Namespace) -> int:
    try:
        with connect(args) as client:
            served = client.embed(
                args.texts,
                normalize=False if args.no_normalize else None,
                prompt_name=args.prompt_name,
            )
    except grpc.RpcError as error:
        print(f"attnserve embed: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    assert served.pooled is not None
    if args.out is not None:
        np.save(args.out, served.pooled)
        print(f"saved {served.pooled.shape[0]} x {served.pooled.shape[1]} to {args.out}")
        return 0
    for text, vector, count in zip(args.texts, served.pooled, served.token_counts, strict=True):
        record = {"text": text, "tokens": count, "embedding": [round(float(v), 7) for v in vector]}
        print(json.dumps(record, ensure_ascii=False))
    timings = served.timings
    print(
        f"server: queue {timings.queue_ms:.2f} ms, tokenize {timings.tokenize_ms:.2f} ms, "
        f"inference {timings.inference_ms:.2f} ms, total {timings.total_ms:.2f} ms",
        file=sys.stderr,
    )
    return 0


def register_attend(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "attend", help="render a text's attention maps as token-labelled heatmaps (PNG)"
    )
    parser.add_argument("text", help="the text to look at")
    add_connection_flags(parser)
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--layers", type=int, nargs="*", default=[], help="layers (default all)")
    parser.add_argument("--heads", type=int, nargs="*", default=[], help="heads (default all)")
    parser.add_argument(
        "--per-head", action="store_true", help="one map per head (default: averaged)"
    )
    add_prompt_flag(parser)
    parser.set_defaults(handler=run_attend)


def run_attend(args: argparse.Namespace) -> int:
    try:
        with connect(args) as client:
            (tokens,) = client.tokenize([args.text], prompt_name=args.prompt_name)
            served = client.embed(
                [args.text],
                prompt_name=args.prompt_name,
                pooled=False,
                attention=True,
                layers=args.layers,
                heads=args.heads,
                average_heads=not args.per_head,
            )
    except grpc.RpcError as error:
        print(f"attnserve attend: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    maps = served.attentions[0]
    assert maps is not None
    from attnserve.service.client.heatmap import render_attention

    labels = [token.text for token in tokens]
    heads = served.attention_heads if args.per_head else None
    render_attention(maps, labels, served.attention_layers, heads, args.out)
    print(f"wrote {args.out}: {maps.shape[0]} layer(s) x {maps.shape[1]} map(s)")
    return 0
