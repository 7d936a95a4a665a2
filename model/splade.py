"""SPLADE: the masked-LM head over every token, one non-negative weight per vocabulary term.

A SPLADE model is an encoder whose pooling runs through its masked-language-model head. Each
token's state (B, T, H) becomes logits over the vocabulary (B, T, V) -- the head's dense layer,
activation and LayerNorm, then the decoder tied to the token embeddings -- and the text's weight
for term v is `log(1 + relu(logit))` reduced over the real tokens by max (SPLADE v2 and later) or
sum (the first SPLADE): (B, T, V) -> (B, V), most of it exactly 0. With sentence-transformers'
`log1p_relu` activation (OpenSearch's models) the log is applied twice.

Loading: sentence-transformers' `SparseEncoder` saves the `*ForMaskedLM` checkpoint at the
folder's root (module `MLMTransformer`, or, from 5.4, `Transformer` with `transformer_task`
"fill-mask") and `SpladePooling` in its own folder. The encoder's tensors load through the
family's map (`checkpoint.load_state`); the head's through `MLM_HEAD_NAMES`, with the same loud
errors. `SparseStaticEmbedding` (an inference-free query side) is refused by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnserve.model.checkpoint import (
    Checkpoint,
    CheckpointError,
    copy_tensors,
    load_state,
    read_config,
    read_family,
    read_tensors,
)
from attnserve.model.embedding_model import AttentionImpl
from attnserve.model.encoder import Encoder
from attnserve.model.encoder_config import EncoderConfig
from attnserve.model.head_checkpoint import encoder_checkpoint, require_files
from attnserve.service.artifact import Family, Pooling

SpladeReduction = Literal["max", "sum"]
SpladeActivation = Literal["relu", "log1p_relu"]


@dataclass(frozen=True)
class MlmHeadNames:
    """A family's masked-LM head tensors (full checkpoint names, prefix included)."""

    dense: str
    norm: str
    decoder: str  # its weight is tied to the token embeddings unless the checkpoint holds one
    bias: str


BERT_MLM = MlmHeadNames(
    "cls.predictions.transform.dense",
    "cls.predictions.transform.LayerNorm",
    "cls.predictions.decoder",
    "cls.predictions.bias",
)
ROBERTA_MLM = MlmHeadNames("lm_head.dense", "lm_head.layer_norm", "lm_head.decoder", "lm_head.bias")
MLM_HEAD_NAMES: dict[Family, MlmHeadNames] = {
    Family.BERT: BERT_MLM,
    Family.ROBERTA: ROBERTA_MLM,
    Family.XLM_ROBERTA: ROBERTA_MLM,
    Family.CAMEMBERT: ROBERTA_MLM,
    Family.DISTILBERT: MlmHeadNames(
        "vocab_transform", "vocab_layer_norm", "vocab_projector", "vocab_projector.bias"
    ),
}
# RoBERTa's head always uses exact GELU (transformers hard-codes it); BERT's and DistilBERT's
# follow the config's activation.
FIXED_GELU = (Family.ROBERTA, Family.XLM_ROBERTA, Family.CAMEMBERT)


@dataclass(frozen=True)
class SpladeSpec:
    reduction: SpladeReduction
    activation: SpladeActivation


class MlmHead(nn.Module):
    """Token states (B, T, H) -> vocabulary logits (B, T, V): dense, activation, LayerNorm, then
    the decoder (the token embeddings' transpose in tied checkpoints) and its bias."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.hidden_act = "gelu" if config.family in FIXED_GELU else config.hidden_act

    def activation(self, x: Tensor) -> Tensor:
        if self.hidden_act == "gelu":
            return F.gelu(x)
        if self.hidden_act == "relu":
            return F.relu(x)
        return F.gelu(x, approximate="tanh")

    def forward(self, hidden: Tensor) -> Tensor:
        x = self.norm(self.activation(self.dense(hidden)))  # (B, T, H)
        logits: Tensor = self.decoder(x)  # (B, T, V)
        return logits


def splade_weights(logits: Tensor, attention_mask: Tensor, spec: SpladeSpec) -> Tensor:
    """(B, T, V) logits, (B, T) mask -> (B, V): log(1 + relu) per token, reduced over real tokens
    (padding multiplied to 0 first, as SpladePooling does: every weight is >= 0, so a zeroed
    padding row changes neither the max nor the sum)."""
    mask = attention_mask.to(logits.dtype).unsqueeze(-1)  # (B, T, 1)
    weights = torch.log1p(torch.relu(logits * mask))  # (B, T, V)
    if spec.activation == "log1p_relu":
        weights = torch.log1p(weights)
    if spec.reduction == "max":
        return weights.amax(dim=1)  # (B, V)
    return weights.sum(dim=1)  # (B, V)


class SpladeModel(nn.Module):
    """An encoder read through its masked-LM head and SPLADE's reduction: (B, T) -> (B, V)."""

    def __init__(self, config: EncoderConfig, spec: SpladeSpec) -> None:
        super().__init__()
        if config.family not in MLM_HEAD_NAMES:
            known = ", ".join(family.value for family in MLM_HEAD_NAMES)
            raise ValueError(f"no masked-LM head for {config.family} ({known})")
        self.config = config
        self.spec = spec
        self.encoder = Encoder(config)
        self.head = MlmHead(config)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
        attention_impl: AttentionImpl | None = None,
    ) -> Tensor:
        out = self.encoder(
            input_ids, attention_mask, token_type_ids, normalize=False,
            attention_impl=attention_impl,
        )  # fmt: skip
        logits = self.head(out.last_hidden_state)  # (B, T, V)
        return splade_weights(logits, attention_mask, self.spec)  # (B, V)


def mlm_head_map(family: Family) -> dict[str, str]:
    """Checkpoint tensor name -> the head's parameter name (the decoder weight aside: tied)."""
    names = MLM_HEAD_NAMES[family]
    mapping = {
        f"{theirs}.{kind}": f"{ours}.{kind}"
        for theirs, ours in ((names.dense, "dense"), (names.norm, "norm"))
        for kind in ("weight", "bias")
    }
    mapping[names.bias] = "decoder.bias"
    return mapping


def mlm_head_tensors(family: Family) -> set[str]:
    """Every checkpoint name the head may hold (the decoder's own weight and bias included)."""
    decoder = MLM_HEAD_NAMES[family].decoder
    return set(mlm_head_map(family)) | {f"{decoder}.weight", f"{decoder}.bias"}


def load_mlm_head(model: SpladeModel, tensors: dict[str, Tensor]) -> None:
    """Copy the head's tensors. The decoder's weight is the checkpoint's own where saved, else
    the (loaded) token embeddings: tied, as transformers saves it."""
    family = model.config.family
    names = MLM_HEAD_NAMES[family]
    mapping = mlm_head_map(family)
    decoder_bias = f"{names.decoder}.bias"
    if names.bias not in tensors and decoder_bias in tensors:  # older saves name it here
        mapping[decoder_bias] = mapping.pop(names.bias)
    decoder_weight = f"{names.decoder}.weight"
    if decoder_weight in tensors:
        mapping[decoder_weight] = "decoder.weight"
    missing = sorted(set(mapping) - set(tensors))
    if missing:
        raise CheckpointError(
            f"checkpoint is missing masked-LM head tensor(s): {', '.join(missing)}"
        )
    params = dict(model.head.named_parameters())
    copy_tensors(mapping, tensors, params, " (the masked-LM head)")
    if decoder_weight not in tensors:
        with torch.no_grad():
            model.head.decoder.weight.copy_(model.encoder.embeddings.token.weight)


# sentence-transformers' module types a SPLADE folder is made of.
MLM_MODULES = ("MLMTransformer", "Transformer")
SPLADE_POOLING = "SpladePooling"


def modules_of(directory: Path) -> list[dict[str, Any]]:
    path = directory / "modules.json"
    if not path.is_file():
        return []
    modules: list[dict[str, Any]] = json.loads(path.read_text())
    return modules


def module_kind(module: dict[str, Any]) -> str:
    return str(module.get("type", "")).rsplit(".", 1)[-1]


def is_splade(directory: Path) -> bool:
    """Whether modules.json holds a SpladePooling (a sentence-transformers SparseEncoder)."""
    return any(module_kind(m) == SPLADE_POOLING for m in modules_of(directory))


def read_splade_spec(directory: Path) -> SpladeSpec:
    """The SparseEncoder's modules: the masked-LM transformer, then SpladePooling; anything else
    (SparseStaticEmbedding's inference-free side, a Router) is refused by name."""
    modules = modules_of(directory)
    kinds = [module_kind(m) for m in modules]
    if len(kinds) != 2 or kinds[0] not in MLM_MODULES or kinds[1] != SPLADE_POOLING:
        raise CheckpointError(
            f"{directory / 'modules.json'}: modules {kinds} are unsupported (attnserve runs a "
            f"SparseEncoder of MLMTransformer (or a fill-mask Transformer) + SpladePooling)"
        )
    if kinds[0] == "Transformer":
        st_file = directory / str(modules[0].get("path", "")) / "sentence_bert_config.json"
        task = (
            json.loads(st_file.read_text()).get("transformer_task") if st_file.is_file() else None
        )
        if task != "fill-mask":
            raise CheckpointError(
                f"{st_file}: a SPLADE Transformer must be fill-mask, not {task!r}"
            )
    raw = json.loads((directory / str(modules[1]["path"]) / "config.json").read_text())
    reduction = raw.get("pooling_strategy", "max")
    activation = raw.get("activation_function", "relu")
    if reduction not in ("max", "sum") or activation not in ("relu", "log1p_relu"):
        raise CheckpointError(
            f"{directory}: SpladePooling {reduction!r}/{activation!r} is unsupported "
            "(max or sum; relu or log1p_relu)"
        )
    return SpladeSpec(reduction=reduction, activation=activation)


def load_splade(directory: Path) -> tuple[SpladeModel, Checkpoint]:
    """Build a SPLADE model from a SparseEncoder folder (the transformer at its root)."""
    require_files(directory)
    spec = read_splade_spec(directory)
    family = read_family(directory / "config.json")
    if family not in MLM_HEAD_NAMES:
        known = ", ".join(f.value for f in MLM_HEAD_NAMES)
        raise CheckpointError(f"{directory}: SPLADE is supported for {known}, not {family.value}")
    config = read_config(directory, family, Pooling.CLS, False)  # pooling unused: SPLADE reduces
    assert isinstance(config, EncoderConfig)
    model = SpladeModel(config, spec)
    tensors = read_tensors(directory)
    head_names = mlm_head_tensors(model.config.family)
    load_state(model.encoder, {k: v for k, v in tensors.items() if k not in head_names})
    load_mlm_head(model, tensors)  # after the encoder: a tied decoder reads its embeddings
    model.eval()
    return model, encoder_checkpoint(directory, config)
