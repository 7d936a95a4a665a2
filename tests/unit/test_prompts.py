"""Prompts: resolved by name (default, none, unknown), prepended before tokenisation, counted in
the token limit, never cut by truncation, and marked in the tokens a client sees."""

from __future__ import annotations

import pytest

from attnserve.service.server.errors import Code, ServiceError
from attnserve.service.server.options import Truncation
from attnserve.service.server.prompts import NO_PROMPT, Prompt, PromptBook
from attnserve.service.server.tokenizer import TextTokenizer, token_views

PROMPTS = {"query": "the bank by ", "document": ""}
TEXT = "a b c d e f g h"  # [CLS] a .. h [SEP]: 10 tokens; with the query prompt, 13


def kept_tokens(tokenizer: TextTokenizer, truncation: Truncation, max_tokens: int) -> list[str]:
    (encoded,) = tokenizer.encode([TEXT], truncation, max_tokens, prompt=PROMPTS["query"])
    return [encoded.encoding.tokens[i] for i in encoded.kept_positions()]


def test_a_request_without_a_name_gets_the_models_default() -> None:
    assert PromptBook(PROMPTS, "query").resolve(None) == Prompt("query", "the bank by ")
    assert PromptBook(PROMPTS, None).resolve(None) == NO_PROMPT


def test_an_empty_name_asks_for_no_prompt_even_over_a_default() -> None:
    assert PromptBook(PROMPTS, "query").resolve("") == NO_PROMPT


def test_a_named_prompt_is_found_and_an_unknown_one_is_refused_with_the_names() -> None:
    book = PromptBook(PROMPTS, None)
    assert book.resolve("document") == Prompt("document", "")
    with pytest.raises(ServiceError) as caught:
        book.resolve("passage")
    assert caught.value.code is Code.INVALID_ARGUMENT
    assert "prompt_name 'passage' is unknown; this model's prompts: 'document', 'query'" in (
        caught.value.message
    )
    with pytest.raises(ServiceError, match="this model's prompts: none"):
        PromptBook({}, None).resolve("query")


def test_the_prompt_is_tokenised_with_the_text_and_counted(text_tokenizer: TextTokenizer) -> None:
    (plain,) = text_tokenizer.encode([TEXT], Truncation.END, 64)
    (prompted,) = text_tokenizer.encode([TEXT], Truncation.END, 64, prompt=PROMPTS["query"])
    assert (plain.length, plain.prompt_tokens) == (10, 0)
    assert (prompted.length, prompted.prompt_tokens) == (13, 3)
    assert prompted.ids.tolist()[4:] == plain.ids.tolist()[1:]  # [CLS] the bank by | a .. [SEP]


def test_truncation_cuts_the_text_and_never_the_prompt(text_tokenizer: TextTokenizer) -> None:
    assert kept_tokens(text_tokenizer, Truncation.END, 7) == [
        "[CLS]", "the", "bank", "by", "a", "b", "[SEP]"
    ]  # fmt: skip
    assert kept_tokens(text_tokenizer, Truncation.START, 7) == [
        "[CLS]", "the", "bank", "by", "g", "h", "[SEP]"
    ]  # fmt: skip
    (encoded,) = text_tokenizer.encode([TEXT], Truncation.START, 7, prompt=PROMPTS["query"])
    assert (encoded.length, encoded.prompt_tokens, encoded.truncated) == (7, 3, True)


def test_a_prompt_that_leaves_no_room_for_the_text_is_refused(
    text_tokenizer: TextTokenizer,
) -> None:
    with pytest.raises(ServiceError) as caught:
        text_tokenizer.encode([TEXT], Truncation.END, 5, prompt=PROMPTS["query"])
    assert caught.value.code is Code.INVALID_ARGUMENT
    assert "text 0: the prompt and special tokens take 5 of the 5 tokens allowed" in (
        caught.value.message
    )


def test_tokens_show_which_are_the_prompts_and_index_their_own_text(
    text_tokenizer: TextTokenizer,
) -> None:
    (encoded,) = text_tokenizer.encode(["river money"], Truncation.END, 64, prompt=PROMPTS["query"])
    views = token_views(encoded)
    assert [(v.text, v.special, v.prompt) for v in views] == [
        ("[CLS]", True, False),
        ("the", False, True),
        ("bank", False, True),
        ("by", False, True),
        ("river", False, False),
        ("money", False, False),
        ("[SEP]", True, False),
    ]
    assert [PROMPTS["query"][v.start : v.end] for v in views if v.prompt] == ["the", "bank", "by"]
    assert [(v.start, v.end) for v in views if not v.prompt and not v.special] == [(0, 5), (6, 11)]
