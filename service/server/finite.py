"""Never answer with NaN or Inf.

Export refuses a graph that produces them on its texts (export/finite.py), but no set of texts
covers every input: an fp16 graph can overflow on one unusual text, a GPU kernel can misbehave.
A NaN vector looks like any other to a caller that does not check and poisons what it is compared
with, so a request whose model output holds one fails as INTERNAL instead; each such text is
counted (`attnserve_non_finite_outputs`), and the first is logged (once per process: a model that
does it once will do it again, and the log must not flood).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from attnserve.service.server.batcher import ItemResult
from attnserve.service.server.errors import Code, ServiceError
from attnserve.service.server.metrics import ModelMetrics

log = logging.getLogger(__name__)
logged = False  # the first occurrence in this process has been logged


def is_finite(result: ItemResult) -> bool:
    """The text's pooled vector and, when asked for, its token vectors hold only numbers."""
    if not np.isfinite(result.pooled).all():
        return False
    if not all(np.isfinite(value).all() for value in result.outputs.values()):
        return False
    return result.token_embeddings is None or bool(np.isfinite(result.token_embeddings).all())


def refuse_non_finite(results: Sequence[ItemResult], metrics: ModelMetrics) -> None:
    """Raise INTERNAL if any text's output holds NaN or Inf; count and log it."""
    bad = [index for index, result in enumerate(results) if not is_finite(result)]
    if not bad:
        return
    metrics.non_finite_outputs.inc(len(bad))
    global logged
    if not logged:
        logged = True
        log.error(
            "the model answered NaN or Inf for %d of %d texts (first: text %d); the request "
            "fails as INTERNAL (logged once per process; attnserve_non_finite_outputs counts)",
            len(bad),
            len(results),
            bad[0],
        )
    raise ServiceError(
        Code.INTERNAL,
        f"the model produced NaN or Inf for text {bad[0]}"
        + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
        + "; no vector was returned",
    )
