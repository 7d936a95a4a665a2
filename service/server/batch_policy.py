"""Which texts go into the next model batch: the oldest waiting text and its neighbours in
length, as many as make the engine do the most real work per second.

A batch pads every text to its longest, so mixing a 10-token query with a 200-token document
pays for 190 tokens of nothing, and attention's cost grows with the square of the padded length.
Starting from the oldest text (so none waits behind younger ones for ever), the batch grows one
text at a time along the length-sorted queue, to the shorter or the longer neighbour, whichever
keeps the estimated seconds per real token lower, and stops when no neighbour lowers it (or a
budget is reached). The estimate comes from the engine's measured `CostModel`: on a CPU, where a
run has little fixed cost, this gives small batches of texts of equal length; on a GPU, where the
fixed cost dominates, large ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from attnserve.service.server.cost_model import CostModel


def grow_batch(
    lengths: Sequence[int], anchor: int, cost: CostModel, max_texts: int, max_tokens: int
) -> tuple[int, int]:
    """The batch `[low, high)` of `lengths` (sorted ascending) around `lengths[anchor]`.

    `max_tokens` bounds the padded tokens (texts x longest); a text longer than that runs alone.
    """
    low, high = anchor, anchor + 1
    real = lengths[anchor]
    per_token = cost.seconds(1, lengths[anchor]) / real
    while high - low < max_texts:
        size = high - low + 1
        options: list[tuple[float, int]] = []  # (seconds per real token, +1 longer / -1 shorter)
        if high < len(lengths) and size * lengths[high] <= max_tokens:
            options.append((cost.seconds(size, lengths[high]) / (real + lengths[high]), +1))
        if low > 0 and size * lengths[high - 1] <= max_tokens:
            options.append((cost.seconds(size, lengths[high - 1]) / (real + lengths[low - 1]), -1))
        if not options:
            break
        candidate, side = min(options)
        if candidate > per_token:  # ties extend: equal lengths share a run at no loss
            break
        per_token = candidate
        if side > 0:
            real += lengths[high]
            high += 1
        else:
            real += lengths[low - 1]
            low -= 1
    return low, high
