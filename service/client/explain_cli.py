"""`attnserve explain`: why two texts are similar, what a text rests on, why a document ranks.

    attnserve explain --target HOST:PORT "A" "B" [--out pair.png] [--html pair.html]
    attnserve explain --target HOST:PORT "A"                      (rollout relevance)
    attnserve explain --target HOST:PORT --query Q --document D [--document D2 ...]

prints the cosine and the token pairs and tokens that carry it most (or each token's rollout
relevance; --json for programs), through the typed client's `explain` (attnserve.v1 Explain)
with every client command's connection flags. `--out` writes a PNG (the token-pair matrix with
the shares as bars, or relevance bars), `--html` an offline page with the matrix, the rollout
and the attention view of each text (or pair) beside them. See docs/explain.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import grpc
import numpy as np

from attnserve.service.client.attention import (
    TextAttention,
    fetch_attention,
    fetch_pair_attention,
)
from attnserve.service.client.channel import add_connection_flags, connection_from_args
from attnserve.service.client.cli import fail, rpc_failure
from attnserve.service.client.client import EmbedderClient, Explanation

TOP = 5  # token pairs and tokens listed in the table


def register_explain(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="explain a similarity (two texts), a text's rollout (one), or a reranker's scores",
        description="Two texts: their cosine split exactly over token pairs (mean pooling). One "
        "text: attention rollout from the pooled position. --query and --document on a "
        "reranker: each document's score and rollout from CLS over its tokens.",
    )
    parser.add_argument("texts", nargs="*", help="one or two texts")
    parser.add_argument("--query", default=None, help="a reranker's query")
    parser.add_argument(
        "--document", action="append", default=[], help="a document to explain (repeatable)"
    )
    add_connection_flags(parser)
    parser.add_argument("--model", default="", help="the served model (default: the first)")
    parser.add_argument("--out", type=Path, default=None, help="PNG picture to write")
    parser.add_argument("--html", type=Path, default=None, help="offline HTML view to write")
    parser.add_argument(
        "--dimensions", type=int, default=0, help="Matryoshka: the first N dimensions (0: all)"
    )
    parser.add_argument("--prompt-name", default=None, help="the model's prompt to prepend")
    parser.add_argument("--max-tokens", type=int, default=0, help="token cap (0: the default)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=run_explain)


def problem_of(args: argparse.Namespace) -> str | None:
    ranking = args.query is not None or bool(args.document)
    if ranking and (args.query is None or not args.document or args.texts):
        return "a ranking takes --query and one or more --document, and no other texts"
    if not ranking and len(args.texts) not in (1, 2):
        return "give one text (its rollout) or two (their similarity), or --query and --document"
    if args.dimensions < 0 or args.max_tokens < 0:
        return "--dimensions and --max-tokens must be 0 (the default) or more"
    return None


def summary(explained: Explanation, texts: list[str]) -> dict[str, object]:
    """What the table and --json say: the cosine and the top pairs, or the relevance."""
    if explained.similarity is not None:
        s = explained.similarity
        rows = [t.text for t in explained.texts[0].tokens]
        cols = [t.text for t in explained.texts[1].tokens]
        flat = np.argsort(-s.cells, axis=None, kind="stable")[:TOP]
        pairs = [
            {"first": rows[i], "second": cols[j], "cell": float(s.cells[i, j])}
            for i, j in (np.unravel_index(k, s.cells.shape) for k in flat)
        ]
        return {
            "model": explained.model,
            "cosine": s.cosine,
            "cells_sum": s.cells_sum,
            "dimensions": s.dimensions,
            "top_pairs": pairs,
            "first_shares": dict(zip(rows, map(float, s.first_shares), strict=False)),
            "second_shares": dict(zip(cols, map(float, s.second_shares), strict=False)),
        }
    if explained.documents:
        return {
            "model": explained.model,
            "query": texts[0],
            "documents": [
                {
                    "index": d.index,
                    "score": d.score,
                    "relevance": [
                        [token, float(value)]
                        for token, value in zip(d.tokens, d.relevance, strict=True)
                    ],
                }
                for d in explained.documents
            ],
        }
    (text,) = explained.texts
    assert text.relevance is not None
    return {
        "model": explained.model,
        "pooling": explained.pooling,
        "relevance": [
            [token.text, float(value)]
            for token, value in zip(text.tokens, text.relevance, strict=True)
        ],
    }


def table(explained: Explanation, texts: list[str]) -> str:
    said = summary(explained, texts)
    if explained.similarity is not None:
        s = explained.similarity
        lines = [
            f"cosine {s.cosine:.6f} = the sum of {s.cells.shape[0]} x {s.cells.shape[1]} token "
            f"pair cells ({s.cells_sum:.6f}); {s.dimensions} dimensions, mean pooling (exact)",
            "token pairs that add most:",
        ]
        pairs = said["top_pairs"]
        assert isinstance(pairs, list)
        lines += [f"  {p['cell']:>+9.5f}  {p['first']!r} x {p['second']!r}" for p in pairs]
        for name, text in (("first", explained.texts[0]), ("second", explained.texts[1])):
            shares = s.first_shares if name == "first" else s.second_shares
            order = np.argsort(-shares, kind="stable")[:TOP]
            best = ", ".join(f"{text.tokens[i].text!r} {shares[i]:+.4f}" for i in order)
            lines.append(f"{name} text's tokens with the largest shares: {best}")
        return "\n".join(lines)
    lines = []
    if explained.documents:
        for document in explained.documents:
            order = np.argsort(-document.relevance, kind="stable")[:TOP]
            best = ", ".join(f"{document.tokens[i]!r} {document.relevance[i]:.4f}" for i in order)
            lines.append(
                f"document {document.index}: score {document.score:.6f}; rollout from CLS, "
                f"most: {best}"
            )
        return "\n".join(lines)
    (text,) = explained.texts
    assert text.relevance is not None
    lines.append(f"rollout relevance from the pooled position ({explained.pooling}):")
    lines += [
        f"  {value:.4f}  {token.text!r}"
        for token, value in zip(text.tokens, text.relevance, strict=True)
    ]
    return "\n".join(lines)


def run_explain(args: argparse.Namespace) -> int:
    problem = problem_of(args)
    if problem:
        return fail("explain", problem, 2)
    if args.out is not None:
        from attnserve.service.client.heatmap import PlotUnavailableError, import_pyplot

        try:
            import_pyplot()
        except PlotUnavailableError as exc:
            return fail("explain", str(exc), 2)
    ranking = args.query is not None
    texts = [args.query, *args.document] if ranking else list(args.texts)
    try:
        with EmbedderClient(connection_from_args(args)) as client:
            explained = client.explain(
                [] if ranking else texts,
                query=args.query or "",
                documents=args.document,
                rollout=args.html is not None,  # the view shows each text's rollout too
                dimensions=args.dimensions,
                prompt_name=args.prompt_name,
                max_tokens=args.max_tokens,
                model=args.model,
            )
            views = fetch_views(client, args, texts) if args.html is not None else []
    except grpc.RpcError as error:
        return rpc_failure("explain", error)
    print(json.dumps(summary(explained, texts)) if args.json else table(explained, texts))
    try:
        if args.out is not None:
            from attnserve.service.client.explain_plot import save_explanation

            width, height = save_explanation(explained, texts, args.out)
            print(f"wrote {args.out} ({width} x {height} px)")
        if args.html is not None:
            from attnserve.service.client.explain_view import explain_html

            page = explain_html(explained, texts, views)
            args.html.write_text(page, encoding="utf-8")
            print(
                f"wrote {args.html} ({len(page.encode()) / 1024:.0f} KiB); open it in any "
                "browser, no network needed"
            )
    except OSError as exc:
        return fail("explain", f"cannot write: {exc}", 1)
    return 0


def fetch_views(
    client: EmbedderClient, args: argparse.Namespace, texts: list[str]
) -> list[TextAttention]:
    """The existing attention view's maps of each text (or each pair), to show beside."""
    if args.query is not None:
        return [
            fetch_pair_attention(client, args.query, document, model=args.model)
            for document in args.document
        ]
    return [
        fetch_attention(
            client, text, prompt_name=args.prompt_name, model=args.model,
            max_tokens=args.max_tokens,
        )
        for text in texts
    ]  # fmt: skip
