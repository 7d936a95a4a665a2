"""Client subcommands: `attnserve embed` and `attnserve attend` against a running server."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import grpc
import numpy as np

from attnserve.service.client.attention import (
    TextAttention,
    difference,
    fetch_attention,
    fetch_pair_attention,
)
from attnserve.service.client.channel import add_connection_flags, connection_from_args
from attnserve.service.client.client import EmbedderClient
from attnserve.service.client.embed_output import (
    cosine_matrix,
    json_document,
    people_table,
    similarity_table,
    vectors_of,
)

SLUG_CHARS = 40


def connect(args: argparse.Namespace) -> EmbedderClient:
    return EmbedderClient(connection_from_args(args))


def fail(command: str, message: str, code: int) -> int:
    print(f"attnserve {command}: {message}", file=sys.stderr)
    return code


def rpc_failure(command: str, error: grpc.RpcError) -> int:
    return fail(command, f"{error.code().name}: {error.details()}", 1)


def register_embed(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="embed texts with a running server (a table; --json or --npy for programs)",
    )
    parser.add_argument("texts", nargs="+", help="texts to embed")
    add_connection_flags(parser)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON document")
    output.add_argument(
        "--npy", "--out", dest="npy", type=Path, default=None, help="save the vectors as .npy"
    )
    parser.add_argument(
        "--similarity", action="store_true", help="cosine similarity between the given texts"
    )
    parser.add_argument(
        "--dims", type=int, default=4, help="leading dimensions the table shows (default 4)"
    )
    parser.add_argument("--no-normalize", action="store_true", help="skip L2 normalisation")
    parser.add_argument("--model", default="", help="the served model to ask (default: the first)")
    parser.add_argument(
        "--sparse",
        action="store_true",
        help="sparse vectors (a SPLADE or bge-m3 model): each text's heaviest terms as words",
    )
    parser.add_argument(
        "--terms", type=int, default=10, help="--sparse: terms shown per text (default 10)"
    )
    add_prompt_flag(parser)
    parser.set_defaults(handler=run_embed)


def add_prompt_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prompt-name",
        default=None,
        help="instruction prompt to prepend, by name (the server's Info lists them, e.g. "
        "'query'); default: the model's default prompt; '' for none",
    )


def run_sparse(args: argparse.Namespace) -> int:
    """`embed --sparse`: each text's heaviest terms, as the tokenizer's strings."""
    if args.terms < 1:
        return fail("embed", "--terms must be at least 1", 2)
    try:
        with connect(args) as client:
            vectors = client.embed_sparse(args.texts, model=args.model, words=True)
    except grpc.RpcError as error:
        return rpc_failure("embed", error)
    if args.json:
        print(json.dumps([
            {"text": text, "indices": v.indices.tolist(), "values": v.values.tolist(),
             "tokens": v.tokens, "token_count": v.token_count, "truncated": v.truncated}
            for text, v in zip(args.texts, vectors, strict=True)
        ]))  # fmt: skip
        return 0
    for text, vector in zip(args.texts, vectors, strict=True):
        terms = ", ".join(f"{token} {weight:.2f}" for token, weight in vector.top(args.terms))
        print(f"{text[:SLUG_CHARS]!r} ({len(vector.indices)} terms): {terms}")
    return 0


def run_embed(args: argparse.Namespace) -> int:
    if args.sparse:
        if args.similarity or args.npy is not None:
            return fail("embed", "--sparse takes neither --similarity nor --npy", 2)
        return run_sparse(args)
    if args.similarity and len(args.texts) < 2:
        return fail("embed", "--similarity needs at least two texts", 2)
    if args.dims < 0:
        return fail("embed", "--dims must be 0 or more", 2)
    try:
        with connect(args) as client:
            served = client.embed(
                args.texts,
                normalize=False if args.no_normalize else None,
                prompt_name=args.prompt_name,
                model=args.model,
            )
    except grpc.RpcError as error:
        return rpc_failure("embed", error)
    assert served.pooled is not None
    timings = served.timings
    vectors = vectors_of(served)
    similarity = cosine_matrix(vectors) if args.similarity else None
    if args.json:
        print(json_document(args.texts, served, similarity))
        return 0
    if args.npy is not None:
        try:
            np.save(args.npy, vectors)
        except OSError as exc:
            return fail("embed", f"cannot write {args.npy}: {exc}", 1)
        rows, size = vectors.shape
        print(f"saved {rows} x {size} float32 to {args.npy}")
    else:
        print(people_table(args.texts, served, args.dims))
    if similarity is not None:
        print("\n" + similarity_table(args.texts, similarity))
    print(
        f"server: queue {timings.queue_ms:.2f} ms, tokenize {timings.tokenize_ms:.2f} ms, "
        f"inference {timings.inference_ms:.2f} ms, total {timings.total_ms:.2f} ms",
        file=sys.stderr,
    )
    return 0


def register_attend(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "attend",
        help="a text's attention maps: heatmaps (PNG) and an interactive view (HTML)",
        description="With several texts, each gets its own file: map.png becomes "
        "map-1-<first words>.png, map-2-<...>.png, and so on. With --query and --document, a "
        "reranker's maps over the pair, its cross block (the query's tokens looking at the "
        "document's) outlined.",
    )
    parser.add_argument("texts", nargs="*", metavar="text", help="the text(s) to look at")
    parser.add_argument("--query", default=None, help="a pair's query (with --document)")
    parser.add_argument(
        "--document", default=None, help="a pair's document: the reranker reads both together"
    )
    parser.add_argument("--model", default="", help="the served model to ask (default: the first)")
    add_connection_flags(parser)
    parser.add_argument("--out", type=Path, default=None, help="PNG heatmap grid to write")
    parser.add_argument(
        "--html", type=Path, default=None, help="self-contained interactive view to write"
    )
    parser.add_argument("--layers", type=int, nargs="*", default=[], help="layers (default all)")
    parser.add_argument("--heads", type=int, nargs="*", default=[], help="heads (default all)")
    parser.add_argument(
        "--per-head",
        action="store_true",
        help="PNG: one map per layer and head (default: each layer's mean over the heads)",
    )
    parser.add_argument(
        "--scale",
        choices=("linear", "sqrt"),
        default="linear",
        help="PNG colour scale; sqrt brings out small weights (the bar shows the values)",
    )
    parser.add_argument(
        "--diff",
        action="store_true",
        help="PNG: the first text's maps minus the second's (texts of equal token counts)",
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=0,
        help="token cap, special tokens included (default: the model's, Info's "
        "default_max_tokens; up to its positions, e.g. 512)",
    )
    add_prompt_flag(parser)
    parser.set_defaults(handler=run_attend)


def slug(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "-".join(words)[:SLUG_CHARS].strip("-")


def output_paths(path: Path, texts: list[str]) -> list[Path]:
    """One file per text: the path itself for one text, else path-<i>-<first words>.suffix."""
    if len(texts) == 1:
        return [path]
    return [
        path.with_name("-".join(filter(None, [path.stem, str(i), slug(text)])) + path.suffix)
        for i, text in enumerate(texts, start=1)
    ]


def attend_problem(args: argparse.Namespace) -> str | None:
    if args.out is None and args.html is None:
        return "say what to write: --out FILE.png and/or --html FILE.html"
    pair = args.query is not None or args.document is not None
    if pair and (args.query is None or args.document is None or args.texts):
        return "a pair takes --query and --document, and no other texts"
    if not pair and not args.texts:
        return "say what to look at: text(s), or --query and --document"
    if args.diff and (len(args.texts) != 2 or args.out is None):
        return "--diff needs exactly two texts and --out"
    if args.max_tokens < 0:
        return "--max-tokens must be 0 (the model's default) or more"
    return None


def subjects(args: argparse.Namespace) -> list[str]:
    """What the files are named after: the texts, or a pair's query."""
    return list(args.texts) or [args.query]


def run_attend(args: argparse.Namespace) -> int:
    problem = attend_problem(args)
    if problem:
        return fail("attend", problem, 2)
    if args.out is not None:
        from attnserve.service.client.heatmap import PlotUnavailableError, import_pyplot

        try:
            import_pyplot()
        except PlotUnavailableError as exc:
            return fail("attend", str(exc), 2)
    try:
        with connect(args) as client:
            pictures, views = fetch_all(client, args)
    except grpc.RpcError as error:
        return rpc_failure("attend", error)
    try:
        if args.diff:
            pictures = [difference(pictures[0], pictures[1])]
        write_pictures(args, pictures)
        write_views(args, views)
    except ValueError as exc:
        return fail("attend", str(exc), 2)
    except OSError as exc:
        return fail("attend", f"cannot write: {exc}", 1)
    return 0


def fetch_all(
    client: EmbedderClient, args: argparse.Namespace
) -> tuple[list[TextAttention], list[TextAttention]]:
    """The maps the PNGs show (as selected) and the views need (every selected head apart)."""
    pictures: list[TextAttention] = []
    views: list[TextAttention] = []

    def fetch(text: str, average: bool) -> TextAttention:
        selection = {"layers": args.layers, "heads": args.heads, "average": average}
        if args.query is not None:
            return fetch_pair_attention(
                client, args.query, args.document, model=args.model, **selection
            )
        return fetch_attention(
            client,
            text,
            prompt_name=args.prompt_name,
            model=args.model,
            max_tokens=args.max_tokens,
            **selection,
        )

    for text in subjects(args):
        if args.out is not None:
            pictures.append(fetch(text, not args.per_head))
        if args.html is not None:
            reuse = args.out is not None and args.per_head
            views.append(pictures[-1] if reuse else fetch(text, False))
    return pictures, views


def write_pictures(args: argparse.Namespace, pictures: list[TextAttention]) -> None:
    if args.out is None:
        return
    from attnserve.service.client.heatmap import describe, save_heatmap

    texts = [picture.text for picture in pictures]
    for picture, path in zip(pictures, output_paths(args.out, texts), strict=True):
        width, height = save_heatmap(picture, path, args.scale)
        print(
            f"wrote {path} ({width} x {height} px): {describe(picture)}; "
            f"{len(picture.tokens)} tokens"
        )


def write_views(args: argparse.Namespace, views: list[TextAttention]) -> None:
    if args.html is None:
        return
    from attnserve.service.client.html_view import view_html

    for view, path in zip(views, output_paths(args.html, subjects(args)), strict=True):
        page = view_html(view)
        path.write_text(page, encoding="utf-8")
        layers, heads = view.maps.shape[:2]
        print(
            f"wrote {path} ({len(page.encode()) / 1024:.0f} KiB): {len(view.tokens)} tokens, "
            f"{layers} layers x {heads} heads; open it in any browser, no network needed"
        )
