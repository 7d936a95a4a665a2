"""What a model batch costs on this engine: seconds as a function of its shape, measured.

    seconds(B, T) = per_call + per_token * B*T + per_token_pair * B*T^2

`per_call` is the fixed price of one run (the hand-off, ONNX Runtime's dispatch; large on a
GPU, where kernels launch whatever the size), `per_token` the dense layers (linear in the padded
tokens), `per_token_pair` attention's QK^T and PV (quadratic in the sequence length). The
batcher asks it which batch does the most real work per second: on a 2-core CPU that is small
batches of texts of equal length, on a GPU large ones. The three numbers are fitted at warm-up
from timed runs of the engine itself, not guessed; `DEFAULT` stands in when warm-up is off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Shape = tuple[int, int]  # (texts, padded length)
# Shapes timed at warm-up: short and longer texts, alone and batched, cheap enough on a CPU.
CALIBRATION_SHAPES: tuple[Shape, ...] = (
    (1, 16), (1, 64), (1, 128), (4, 16), (4, 64), (4, 128), (8, 32), (8, 128), (16, 16),
)  # fmt: skip


@dataclass(frozen=True)
class CostModel:
    per_call_s: float
    per_token_s: float
    per_token_pair_s: float

    def seconds(self, texts: int, length: int) -> float:
        tokens = texts * length
        return self.per_call_s + self.per_token_s * tokens + self.per_token_pair_s * tokens * length

    def describe(self) -> str:
        return (
            f"{self.per_call_s * 1e3:.3f} ms/batch + {self.per_token_s * 1e6:.2f} us/token "
            f"+ {self.per_token_pair_s * 1e9:.2f} ns/token/position"
        )

    @classmethod
    def fit(cls, shapes: Sequence[Shape], seconds: Sequence[float]) -> CostModel:
        """Least squares over the timed shapes, every coefficient kept >= 0."""
        columns = np.array([[1.0, b * t, b * t * t] for b, t in shapes], dtype=np.float64)  # (n, 3)
        target = np.asarray(seconds, dtype=np.float64)
        active = [0, 1, 2]
        coefficients = np.zeros(3)
        while active:  # drop a negative coefficient and refit the rest (a tiny NNLS)
            solution, *_ = np.linalg.lstsq(columns[:, active], target, rcond=None)
            if (solution >= 0).all():
                coefficients[active] = solution
                break
            active.pop(int(np.argmin(solution)))
        return cls(*(float(c) for c in coefficients))


# A CPU-like stand-in (2 cores, a MiniLM-sized model) for servers started without warm-up.
DEFAULT = CostModel(per_call_s=3e-4, per_token_s=6e-5, per_token_pair_s=5e-8)
