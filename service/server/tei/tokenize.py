"""tei.v1's `Tokenize` service: TEI's Tokenize and Decode over the default model's tokenizer, a
thin cell.

Tokenize answers TEI's `SimpleToken`s: a special token's own string and no offsets; any other
token the slice of the input it covers (the prompt included, when `prompt_name` prepends one)
and its `start`/`stop` as UTF-8 byte offsets into that input, as TEI's tokenizer reports them.
`add_special_tokens` false leaves the template's special tokens out. The tokens are those the
model would run: past `max_tokens_per_text` the text is cut at the end (TEI's Tokenize never
truncates; attnserve's tokenizer never hands out more than a model can read).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from attnserve.service.server.calls import Context, Front, GrpcCall, parse
from attnserve.service.server.options import TokenizeOptions, Truncation
from attnserve.service.server.registry import Registry
from attnserve.service.server.settings import Settings
from attnserve.service.server.tei.messages import PROTOCOL
from attnserve.service.server.tei.streams import Streams
from attnserve.service.server.tokenizer import EncodedText, byte_offsets
from attnserve.tei import tei_pb2 as pb


def simple_tokens(encoded: EncodedText, text: str, special_tokens: bool) -> list[pb.SimpleToken]:
    """One text's kept tokens as TEI's `SimpleToken`s; `text` is the input as encoded (prompt
    and text)."""
    encoding = encoded.encoding
    offsets, specials = encoding.offsets, encoding.special_tokens_mask  # each read builds a list
    ids, strings = encoding.ids, encoding.tokens
    to_bytes = None if text.isascii() else byte_offsets(text)
    tokens = []
    for i in encoded.kept_positions():
        if specials[i]:
            if special_tokens:
                tokens.append(pb.SimpleToken(id=ids[i], text=strings[i], special=True))
            continue
        start, stop = offsets[i]
        if to_bytes is not None:
            start, stop = to_bytes[start], to_bytes[stop]
        piece = text[offsets[i][0] : offsets[i][1]]
        tokens.append(pb.SimpleToken(id=ids[i], text=piece, start=start, stop=stop))
    return tokens


class TokenizeCell:
    """`Tokenize` and `Decode` of `tei.v1.Tokenize`, each with its stream."""

    def __init__(self, models: Registry, front: Front, settings: Settings) -> None:
        self.models = models
        self.front = front
        self.streams = Streams(front, settings.max_stream_pending)

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        return {
            "Tokenize": grpc.unary_unary_rpc_method_handler(
                self.Tokenize, response_serializer=pb.EncodeResponse.SerializeToString
            ),
            "Decode": grpc.unary_unary_rpc_method_handler(
                self.Decode, response_serializer=pb.DecodeResponse.SerializeToString
            ),
            "TokenizeStream": grpc.stream_stream_rpc_method_handler(
                self.TokenizeStream, response_serializer=pb.EncodeResponse.SerializeToString
            ),
            "DecodeStream": grpc.stream_stream_rpc_method_handler(
                self.DecodeStream, response_serializer=pb.DecodeResponse.SerializeToString
            ),
        }

    async def Tokenize(self, data: bytes, context: Context) -> pb.EncodeResponse:
        async with GrpcCall(self.front, PROTOCOL, "Tokenize", context):
            return await self.tokenize(parse(pb.EncodeRequest, data))

    async def TokenizeStream(
        self, requests: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[pb.EncodeResponse]:
        stream = self.streams.answer(
            "TokenizeStream", context, requests, pb.EncodeRequest, self.tokenize
        )
        async for response in stream:
            yield response

    async def DecodeStream(
        self, requests: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[pb.DecodeResponse]:
        async def run(request: pb.DecodeRequest) -> pb.DecodeResponse:
            return self.decode(request)

        stream = self.streams.answer("DecodeStream", context, requests, pb.DecodeRequest, run)
        async for response in stream:
            yield response

    async def tokenize(self, request: pb.EncodeRequest) -> pb.EncodeResponse:
        """One Tokenize request, unary or streamed."""
        model = self.models.route(None)
        options = TokenizeOptions(
            truncation=Truncation.END,
            max_tokens=model.limits.max_tokens_per_text,
            prompt_name=request.prompt_name if request.HasField("prompt_name") else None,
        )
        tokenized = await model.tokenize([request.inputs], options)
        encoded = tokenized.texts[0]
        text = tokenized.prompt.text + request.inputs
        return pb.EncodeResponse(tokens=simple_tokens(encoded, text, request.add_special_tokens))

    async def Decode(self, data: bytes, context: Context) -> pb.DecodeResponse:
        async with GrpcCall(self.front, PROTOCOL, "Decode", context):
            return self.decode(parse(pb.DecodeRequest, data))

    def decode(self, request: pb.DecodeRequest) -> pb.DecodeResponse:
        """One Decode request, unary or streamed."""
        model = self.models.route(None)
        text = model.decode([list(request.ids)], request.skip_special_tokens)[0]
        return pb.DecodeResponse(text=text)
