"""`attnserve chunk`: one document late-chunked by a running server (EmbedChunks).

    attnserve chunk --target HOST:PORT --every 32 "a long document ..."
    attnserve chunk --target HOST:PORT --span 0:40 --span 41:98 "a long document ..."

prints one row per chunk (its span, tokens pooled, whether it fell outside or was cut, the
start of its text; --json adds the vectors, for programs), through the typed client's
`embed_chunks` with every client command's connection flags.
"""

from __future__ import annotations

import argparse
import json

import grpc

from attnserve.service.client.channel import add_connection_flags, connection_from_args
from attnserve.service.client.cli import fail, rpc_failure
from attnserve.service.client.client import ChunkedDocument, EmbedderClient

SHOWN_CHARS = 50


def register_chunk(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "chunk", help="late-chunk a document with a running server (one vector per chunk)"
    )
    parser.add_argument("document", help="the document's text")
    add_connection_flags(parser)
    chunks = parser.add_mutually_exclusive_group(required=True)
    chunks.add_argument("--every", type=int, default=0, help="a chunk every N tokens")
    chunks.add_argument(
        "--span", action="append", default=[], help="a chunk's characters, START:END (repeat)"
    )
    parser.add_argument(
        "--truncate", choices=("none", "end", "start"), default="none",
        help="a document over the token cap: refuse, or cut its end or its start",
    )  # fmt: skip
    parser.add_argument("--model", default="", help="the served model to ask (default: the first)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=run_chunk)


def parse_span(text: str) -> tuple[int, int]:
    start, _, end = text.partition(":")
    return int(start), int(end)


def chunk_table(document: ChunkedDocument, text: str) -> str:
    lines = ["chunk  start    end  tokens  note       text"]
    for index, chunk in enumerate(document.chunks):
        note = "outside" if chunk.outside else "truncated" if chunk.truncated else ""
        shown = text[chunk.start : chunk.end].replace("\n", " ")
        shown = shown if len(shown) <= SHOWN_CHARS else shown[: SHOWN_CHARS - 3] + "..."
        lines.append(
            f"{index:>5}  {chunk.start:>5}  {chunk.end:>5}  {chunk.token_count:>6}  "
            f"{note:<9}  {shown}"
        )
    return "\n".join(lines)


def run_chunk(args: argparse.Namespace) -> int:
    try:
        spans = [parse_span(span) for span in args.span]
    except ValueError:
        return fail("chunk", "--span takes START:END, two integers", 2)
    try:
        with EmbedderClient(connection_from_args(args)) as client:
            (document,) = client.embed_chunks(
                [args.document],
                spans=[spans] if spans else (),
                tokens_per_chunk=args.every,
                truncate=args.truncate,
                model=args.model,
            )
    except grpc.RpcError as error:
        return rpc_failure("chunk", error)
    if args.json:
        chunks = [
            {
                "start": chunk.start,
                "end": chunk.end,
                "token_count": chunk.token_count,
                "truncated": chunk.truncated,
                "outside": chunk.outside,
                "vector": None if chunk.vector is None else chunk.vector.tolist(),
            }
            for chunk in document.chunks
        ]
        print(json.dumps({"token_count": document.token_count, "chunks": chunks}))
    else:
        print(chunk_table(document, args.document))
    return 0
