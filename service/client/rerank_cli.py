"""`attnserve rerank`: documents ranked against a query by a running server's reranker.

    attnserve rerank --target HOST:PORT "query" "doc 1" "doc 2" ...

prints a ranked table (rank, score, the document's index and its text; --json for programs),
through the typed client's `rerank` (attnserve.v1 Rerank) with every client command's
connection flags.
"""

from __future__ import annotations

import argparse
import json

import grpc

from attnserve.service.client.channel import add_connection_flags, connection_from_args
from attnserve.service.client.cli import rpc_failure
from attnserve.service.client.client import EmbedderClient, Ranked

SHOWN_CHARS = 60


def register_rerank(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rerank", help="rank documents against a query with a running server's reranker"
    )
    parser.add_argument("query", help="the query")
    parser.add_argument("documents", nargs="+", help="the documents to rank")
    add_connection_flags(parser)
    parser.add_argument(
        "--model", default="", help="the served reranker to ask (default: the first model)"
    )
    parser.add_argument("--top-n", type=int, default=0, help="show the best N only (0: all)")
    parser.add_argument("--raw", action="store_true", help="raw logits instead of scores")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=run_rerank)


def ranked_table(ranked: list[Ranked], documents: list[str]) -> str:
    lines = ["rank  score       index  document"]
    for rank, result in enumerate(ranked, start=1):
        text = documents[result.index]
        shown = text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."
        lines.append(f"{rank:>4}  {result.score:>10.6f}  {result.index:>5}  {shown}")
    return "\n".join(lines)


def run_rerank(args: argparse.Namespace) -> int:
    try:
        with EmbedderClient(connection_from_args(args)) as client:
            ranked = client.rerank(
                args.query,
                args.documents,
                top_n=args.top_n,
                raw_scores=args.raw,
                model=args.model,
            )
    except grpc.RpcError as error:
        return rpc_failure("rerank", error)
    if args.json:
        results = [{"index": r.index, "score": r.score} for r in ranked]
        print(json.dumps({"query": args.query, "results": results}))
    else:
        print(ranked_table(ranked, args.documents))
    return 0
