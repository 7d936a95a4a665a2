"""Text pairs (or single texts) -> ids for a cross-encoder: tokenizer.json's own pair template,
truncated longest-first exactly as sentence-transformers' CrossEncoder (through the `tokenizers`
library) truncates.

The server stays family-agnostic: the template ([CLS] a [SEP] b [SEP] with token types 0 and 1
for BERT, <s> a </s></s> b </s> for RoBERTa-style) is the artifact's tokenizer.json
post-processor, applied by `Tokenizer.post_process`; this module only decides how many tokens of
each text to keep. The shared `Tokenizer` is never reconfigured (it serves every request thread).
"""

from __future__ import annotations

import numpy as np
from tokenizers import Tokenizer

from attnserve.service.server.errors import invalid
from attnserve.service.server.options import Truncation
from attnserve.service.server.tokenizer import EncodedText


def longest_first(first: int, second: int, budget: int) -> tuple[int, int]:
    """Tokens to keep of each text so that both fit `budget` (the tokens left after the special
    ones): the longer text gives way first, and if both are over half, each gets half (the
    first the smaller half). The `tokenizers` library's LongestFirst, step for step."""
    if first + second <= budget:
        return first, second
    short, long_ = sorted((first, second))
    long_ = short if short > budget else max(short, budget - short)
    if short + long_ > budget:
        short = budget // 2
        long_ = short + budget % 2
    return (long_, short) if first > second else (short, long_)


class PairTokenizer:
    def __init__(self, tokenizer: Tokenizer, max_tokens: int) -> None:
        self.tokenizer = tokenizer  # shared with TextTokenizer; only read
        self.max_tokens = max_tokens
        self.special_count = tokenizer.num_special_tokens_to_add(is_pair=True)
        self.single_special_count = tokenizer.num_special_tokens_to_add(is_pair=False)

    def encode(
        self, pairs: list[tuple[str, str | None]], truncation: Truncation, max_tokens: int
    ) -> list[EncodedText]:
        """Each (a, b) through the pair template, or (a, None) through the single-text one;
        over-long rows truncated longest-first on the chosen side (END keeps each text's
        start), or refused with Truncation.NONE."""
        if not self.special_count + 2 <= max_tokens <= self.max_tokens:
            raise invalid(
                f"max_tokens must be in {self.special_count + 2}..{self.max_tokens} for a pair, "
                f"got {max_tokens}"
            )
        firsts = self.tokenizer.encode_batch_fast([a for a, _ in pairs], add_special_tokens=False)
        seconds = self.tokenizer.encode_batch_fast(
            [b or "" for _, b in pairs], add_special_tokens=False
        )
        direction = "left" if truncation is Truncation.START else "right"
        encoded = []
        for index, (first, second) in enumerate(zip(firsts, seconds, strict=True)):
            pair = pairs[index][1] is not None
            special = self.special_count if pair else self.single_special_count
            n1, n2 = len(first.ids), len(second.ids) if pair else 0
            budget = max_tokens - special
            truncated = n1 + n2 > budget
            if truncated:
                if truncation is Truncation.NONE:
                    raise invalid(
                        f"input {index} has {n1 + n2 + special} tokens, over the limit "
                        f"of {max_tokens}; shorten it or allow truncation"
                    )
                keep1, keep2 = longest_first(n1, n2, budget)
                first.truncate(keep1, direction=direction)
                second.truncate(keep2, direction=direction)
            encoding = self.tokenizer.post_process(
                first, second if pair else None, add_special_tokens=True
            )
            ids = np.asarray(encoding.ids, dtype=np.int64)
            type_ids = np.asarray(encoding.type_ids, dtype=np.int64)
            kept = (len(first.ids), len(second.ids)) if pair else (len(first.ids),)
            encoded.append(
                EncodedText(ids, type_ids, truncated, encoding, None, segment_tokens=kept)
            )
        return encoded
