"""Tokenisation limits and truncation positions: which tokens survive, on which side."""

from __future__ import annotations

import pytest

from attnserve.service.server.errors import Code, ServiceError
from attnserve.service.server.options import Truncation
from attnserve.service.server.tokenizer import TextTokenizer

TEXT = "a b c d e f g h"  # [CLS] a b c d e f g h [SEP]: 10 tokens


def kept_tokens(tokenizer: TextTokenizer, truncation: Truncation, max_tokens: int) -> list[str]:
    (encoded,) = tokenizer.encode([TEXT], truncation, max_tokens, offsets=True)
    return [encoded.encoding.tokens[i] for i in encoded.kept_positions()]


def test_a_text_within_the_limit_is_untouched(text_tokenizer: TextTokenizer) -> None:
    (encoded,) = text_tokenizer.encode([TEXT], Truncation.END, 10)
    assert not encoded.truncated
    assert encoded.length == 10
    assert encoded.ids.tolist() == encoded.encoding.ids


def test_truncating_the_end_keeps_the_start_and_both_special_tokens(
    text_tokenizer: TextTokenizer,
) -> None:
    assert kept_tokens(text_tokenizer, Truncation.END, 5) == ["[CLS]", "a", "b", "c", "[SEP]"]


def test_truncating_the_start_keeps_the_end_and_both_special_tokens(
    text_tokenizer: TextTokenizer,
) -> None:
    assert kept_tokens(text_tokenizer, Truncation.START, 5) == ["[CLS]", "f", "g", "h", "[SEP]"]


def test_truncated_ids_and_type_ids_follow_the_kept_positions(
    text_tokenizer: TextTokenizer,
) -> None:
    (encoded,) = text_tokenizer.encode([TEXT], Truncation.START, 4)
    assert encoded.truncated
    assert encoded.ids.tolist() == [encoded.encoding.ids[i] for i in encoded.kept_positions()]
    assert encoded.type_ids.shape == encoded.ids.shape


def test_refusing_to_truncate_names_the_text_and_the_limit(text_tokenizer: TextTokenizer) -> None:
    with pytest.raises(ServiceError) as caught:
        text_tokenizer.encode(["ok", TEXT], Truncation.NONE, 5)
    assert caught.value.code is Code.INVALID_ARGUMENT
    assert "text 1 has 10 tokens, over the limit of 5" in caught.value.message


@pytest.mark.parametrize("max_tokens", [2, 65])
def test_a_token_cap_outside_what_the_model_holds_is_refused(
    text_tokenizer: TextTokenizer, max_tokens: int
) -> None:
    with pytest.raises(ServiceError, match=r"max_tokens must be in 3\.\.64"):
        text_tokenizer.encode([TEXT], Truncation.END, max_tokens)


@pytest.mark.parametrize("truncation", list(Truncation))
def test_embedding_requests_skip_offsets_but_get_the_same_ids(
    text_tokenizer: TextTokenizer, truncation: Truncation
) -> None:
    texts = ["the bank by the river", "a b c d e f g h w the bank"]
    limit = 64 if truncation is Truncation.NONE else 6
    fast = text_tokenizer.encode(texts, truncation, limit)
    full = text_tokenizer.encode(texts, truncation, limit, offsets=True)
    for quick, complete in zip(fast, full, strict=True):
        assert quick.ids.tolist() == complete.ids.tolist()
        assert quick.type_ids.tolist() == complete.type_ids.tolist()
        assert quick.truncated == complete.truncated
    assert full[0].encoding.offsets[1] == (0, 3)  # "the"
