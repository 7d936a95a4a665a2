"""Pairs tokenised for a cross-encoder: the pair template and longest-first truncation equal the
`tokenizers` library's own (which CrossEncoder's tokenizer runs), for every length split."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from attnserve.service.server.errors import ServiceError
from attnserve.service.server.options import Truncation
from attnserve.service.server.pairs import PairTokenizer, longest_first
from attnserve.service.server.tasks.score import segments_of, token_strings

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


def roberta_style() -> Tokenizer:
    """<s> a </s></s> b </s>: every token type 0, so only the sequence ids say which text."""
    built = tokenizer()
    built.post_processor = processors.RobertaProcessing(("[SEP]", 3), ("[CLS]", 2))
    return built


@pytest.mark.parametrize("template", [tokenizer, roberta_style])
def test_segments_say_where_each_text_of_a_pair_lies(template: Any) -> None:
    """The spans a pair's attention maps come with: exactly the positions of each text's own
    tokens (after truncation), the template's special tokens outside both."""
    pairs = PairTokenizer(template(), 64)
    for n1, n2, max_tokens in [(3, 5, 64), (2, 30, 12), (11, 11, 13), (1, 1, 64)]:
        a, b = " ".join(WORDS[:n1]), " ".join(WORDS[20 : 20 + n2])
        (pair,) = pairs.encode([(a, b)], Truncation.END, max_tokens)
        (first, second) = segments_of(pair)
        ids = pair.ids.tolist()
        # The query's words from its first, in order (w_i has id 4 + i), then the document's.
        assert ids[first[0] : first[1]] == list(range(4, 4 + first[1] - first[0]))
        assert all(4 <= i < 24 for i in ids[first[0] : first[1]])
        assert all(i >= 24 for i in ids[second[0] : second[1]])  # the document's words
        outside = [i for p, i in enumerate(ids) if not (first[0] <= p < first[1] or
                                                       second[0] <= p < second[1])]  # fmt: skip
        assert set(outside) <= {2, 3}  # [CLS]/<s> and [SEP]/</s> only
        assert len(outside) == pairs.special_count
        assert (first[1] - first[0]) + (second[1] - second[0]) == len(ids) - pairs.special_count
        strings = token_strings(pairs.tokenizer, pair)
        assert strings[first[0]] == "w0"
        assert strings[second[0]] == "w20"
    (single,) = pairs.encode([(" ".join(WORDS[:4]), None)], Truncation.END, 64)
    assert segments_of(single) == ((1, 5),)
