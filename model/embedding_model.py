"""What every family's model is to the rest of attnserve: one call shape, one output, and the
few hyper-parameters export and the manifest read.

`export/` and the tests drive any family through this surface alone (input ids, a padding mask,
optional token types -> token vectors, a pooled vector, optional attention maps), so a new family
is a new module and a `model/families.py` entry, never an edit downstream.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Protocol

import torch.nn.functional as F
from torch import Tensor, nn

from attnserve.model.pooling import pool
from attnserve.service.artifact import Family, Pooling

AttentionImpl = Literal["explicit", "sdpa"]


class ModelOutput(NamedTuple):
    last_hidden_state: Tensor  # (B, T, H)
    pooled: Tensor  # (B, H)
    attentions: tuple[Tensor, ...]  # per layer (B, nh, T, T); empty unless asked for


class ModelConfig(Protocol):
    """The fields every family's config has (frozen dataclasses satisfy it)."""

    @property
    def family(self) -> Family: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def num_layers(self) -> int: ...
    @property
    def num_heads(self) -> int: ...
    @property
    def max_positions(self) -> int: ...
    @property
    def max_tokens(self) -> int:
        """The most tokens a text may hold (the position table less any offset into it)."""
        ...

    @property
    def pad_token_id(self) -> int: ...
    @property
    def pooling(self) -> Pooling: ...
    @property
    def normalize(self) -> bool: ...
    @property
    def causal(self) -> bool: ...
    @property
    def inputs(self) -> tuple[str, ...]:
        """The graph inputs this family takes, from service/padding.py's INPUT_NAMES."""
        ...


class EmbeddingModel(nn.Module):
    """The base of every family's model: `config` and `forward` with the shared call shape."""

    config: ModelConfig
    attention_impl: AttentionImpl

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
        output_attentions: bool = False,
        normalize: bool | None = None,
        attention_impl: AttentionImpl | None = None,
    ) -> ModelOutput:
        """input_ids, attention_mask (1 = real token), token_type_ids: (B, T) integer tensors.

        `token_type_ids` is ignored by families without segments; `attention_impl` overrides the
        model's default path for one call (export asks for `sdpa` for the fast graph and
        `explicit` for the maps graph); `normalize` overrides the config's L2 normalisation."""
        raise NotImplementedError

    def finish(
        self,
        hidden: Tensor,
        attention_mask: Tensor,
        attentions: list[Tensor],
        normalize: bool | None,
    ) -> ModelOutput:
        """The epilogue every family shares: the last token states (B, T, H) pooled as the config
        says into (B, H), L2-normalised where the call (else the config) asks for it."""
        pooled = pool(hidden, attention_mask, self.config.pooling)  # (B, H)
        if self.config.normalize if normalize is None else normalize:
            pooled = F.normalize(pooled, p=2.0, dim=-1)
        return ModelOutput(hidden, pooled, tuple(attentions))
