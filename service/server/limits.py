"""What one served model allows a request, fixed for the server's life: the domain's `Limits`.

Built once at assembly from the settings and the model (the token cap is the setting within
the model's positions), then handed to the pipeline that enforces them, to `Info` (the
v1 kit renders them as `attnserve.v1.Limits`) and to the start-up log, so the three can never
disagree and nothing on the request path reads `Settings`.
"""

from __future__ import annotations

from dataclasses import dataclass

from attnserve.service.server.errors import invalid
from attnserve.service.server.settings import Settings


@dataclass(frozen=True)
class Limits:
    max_texts_per_request: int
    max_chars_per_text: int
    max_tokens_per_text: int  # the setting, within the model's max positions
    max_attention_elements: int
    max_receive_message_bytes: int
    max_send_message_bytes: int
    max_queue_texts: int
    max_documents_per_request: int = 1000  # a rerank request's pairs
    max_document_tokens: int = 8192  # a chunked text's tokens, over all its windows
    # Chunked embeddings' defaults, which a request may override (not limits, but fixed for the
    # server's life and shown by Info beside them).
    chunking: bool = False
    chunk_overlap_tokens: int = 0
    max_late_chunking_documents: int = 64  # a late-chunking request's documents
    max_chunks_per_document: int = 512  # ... and each one's chunks
    auto_truncate: bool = False  # HTTP: an embedding request without `truncate` is cut

    @classmethod
    def of(cls, settings: Settings, max_positions: int) -> Limits:
        """The settings' limits for a model of `max_positions` positions."""
        return cls(
            max_texts_per_request=settings.max_texts_per_request,
            max_chars_per_text=settings.max_chars_per_text,
            max_tokens_per_text=min(settings.max_tokens_per_text or max_positions, max_positions),
            max_attention_elements=settings.max_attention_elements,
            max_receive_message_bytes=settings.max_receive_message_bytes,
            max_send_message_bytes=settings.max_send_message_bytes,
            max_queue_texts=settings.max_queue_texts,
            max_documents_per_request=settings.max_documents_per_request,
            max_document_tokens=settings.max_document_tokens,
            chunking=settings.chunking,
            chunk_overlap_tokens=settings.chunk_overlap_tokens,
            max_late_chunking_documents=settings.max_late_chunking_documents,
            max_chunks_per_document=settings.max_chunks_per_document,
            auto_truncate=settings.auto_truncate,
        )

    def check_text(self, what: str, text: str) -> None:
        """One text of a request (`what` names it: "text 3", "the query", "document 0"): not
        empty, and within the characters a text may have. The one text check of every task."""
        if not text:
            raise invalid(f"{what} is empty")
        if len(text) > self.max_chars_per_text:
            raise invalid(
                f"{what} has {len(text)} characters, over the limit of {self.max_chars_per_text}"
            )

    def describe(self) -> str:
        """One line for the start-up log."""
        return (
            f"{self.max_texts_per_request} texts/request, {self.max_chars_per_text} chars/text, "
            f"{self.max_tokens_per_text} tokens/text, {self.max_attention_elements} attention "
            f"elements/response, {self.max_queue_texts} texts queued, "
            f"{self.max_documents_per_request} documents/rerank, "
            f"{self.max_document_tokens} tokens/chunked document (chunking "
            f"{'on' if self.chunking else 'off'} by default, {self.chunk_overlap_tokens} tokens "
            f"overlap), {self.max_late_chunking_documents} documents x "
            f"{self.max_chunks_per_document} chunks/late chunking"
        )
