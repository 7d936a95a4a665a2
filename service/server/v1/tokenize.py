"""attnserve.v1's `Tokenize`: the tokens a model's Embed would run, a thin cell.

Token strings and code-point offsets, special and prompt flags, exactly as Embed tokenises (the
same truncation, cap and prompt); `counts_only` skips the tokens for a cheap count.
"""

from __future__ import annotations

import grpc

from attnserve.service.server.calls import Context, Front, GrpcCall, parse
from attnserve.service.server.options import TokenizeOptions
from attnserve.service.server.registry import Registry
from attnserve.service.server.settings import Settings
from attnserve.service.server.tokenizer import token_views
from attnserve.service.server.v1.messages import PROTOCOL, TRUNCATIONS, enum_value
from attnserve.v1 import embedder_pb2 as pb


class TokenizeCell:
    """`Tokenize` of `attnserve.v1.Embedder`."""

    def __init__(self, models: Registry, front: Front, settings: Settings) -> None:
        self.models = models
        self.front = front

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        return {
            "Tokenize": grpc.unary_unary_rpc_method_handler(
                self.Tokenize, response_serializer=pb.TokenizeResponse.SerializeToString
            ),
        }

    async def Tokenize(self, data: bytes, context: Context) -> pb.TokenizeResponse:
        async with GrpcCall(self.front, PROTOCOL, "Tokenize", context):
            request = parse(pb.TokenizeRequest, data)
            options = TokenizeOptions(
                truncation=enum_value(TRUNCATIONS, request.truncate, "truncate"),
                max_tokens=request.max_tokens or None,
                prompt_name=request.prompt_name if request.HasField("prompt_name") else None,
            )
            model = self.models.route(request.model)
            counts_only = request.counts_only  # no offsets, no Token messages: counts cheaply
            tokenized = await model.tokenize(list(request.texts), options, offsets=not counts_only)
            texts = []
            for text in tokenized.texts:
                tokens = [] if counts_only else [
                    pb.Token(
                        id=view.id, text=view.text, start=view.start, end=view.end,
                        special=view.special, prompt=view.prompt,
                    )
                    for view in token_views(text)
                ]  # fmt: skip
                texts.append(
                    pb.TokenizedText(
                        tokens=tokens, truncated=text.truncated, token_count=text.length
                    )
                )
            return pb.TokenizeResponse(texts=texts, prompt_name=tokenized.prompt.name)
