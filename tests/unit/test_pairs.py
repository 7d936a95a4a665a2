"""Pairs tokenised for a cross-encoder: the pair template and longest-first truncation equal the
`tokenizers` library's own (which CrossEncoder's tokenizer runs), for every length split."""

from __future__ import annotations

import itertools

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from attnserve.service.server.errors import ServiceError
from attnserve.service.server.options import Truncation
from attnserve.service.server.pairs import PairTokenizer, longest_first

WORDS = [f"w{i}" for i in range(40)]


def tokenizer() -> Tokenizer:
    vocab = {
        "[PAD]": 0,
        "[UNK]": 1,
        "[CLS]": 2,
        "[SEP]": 3,
        **{w: i + 4 for i, w in enumerate(WORDS)},
    }
    built = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    built.pre_tokenizer = pre_tokenizers.Whitespace()
    built.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    return built


@pytest.mark.parametrize("max_tokens", [5, 8, 13])
def test_pairs_equal_the_libraries_longest_first_truncation(max_tokens: int) -> None:
    reference = tokenizer()
    reference.enable_truncation(max_tokens, strategy="longest_first")
    pairs = PairTokenizer(tokenizer(), 64)
    for n1, n2 in itertools.product(range(1, 12), repeat=2):
        a, b = " ".join(WORDS[:n1]), " ".join(WORDS[20 : 20 + n2])
        (ours,) = pairs.encode([(a, b)], Truncation.END, max_tokens)
        theirs = reference.encode(a, b)
        assert ours.ids.tolist() == theirs.ids, (n1, n2)
        assert ours.type_ids.tolist() == theirs.type_ids, (n1, n2)
        assert ours.truncated == (n1 + n2 + 3 > max_tokens)
        (single,) = pairs.encode([(a, None)], Truncation.END, max_tokens)
        assert single.ids.tolist() == reference.encode(a).ids


def test_longest_first_gives_way_from_the_longer_text() -> None:
    assert longest_first(3, 4, 10) == (3, 4)  # fits: nothing cut
    assert longest_first(2, 20, 10) == (2, 8)  # the longer gives way
    assert longest_first(20, 2, 10) == (8, 2)
    assert longest_first(9, 9, 11) == (5, 6)  # both over half: halves, the first the smaller


def test_an_over_long_pair_is_refused_without_truncation() -> None:
    pairs = PairTokenizer(tokenizer(), 64)
    with pytest.raises(ServiceError, match="input 0 has 13 tokens, over the limit of 8"):
        pairs.encode([(" ".join(WORDS[:5]), " ".join(WORDS[:5]))], Truncation.NONE, 8)
