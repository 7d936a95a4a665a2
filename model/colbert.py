"""ColBERT: an encoder, a linear projection per token, unit rows: (B, T) -> (B, T, D).

Late interaction keeps one small vector per token (ColBERTv2: 768 -> 128) and scores a query
against a document by MaxSim: for each query vector its best dot product with the document's,
summed (`service/multi_vector.py`, which also says how a text's ids are prepared: the query
and document markers, query expansion with [MASK], the skiplist).

Loading: a PyLate folder, as `pylate.models.ColBERT.save` writes it: the transformer at the
root (sentence-transformers' `Transformer`), one or more `Dense` modules (PyLate's or
sentence-transformers', identity activation, `linear.weight` and an optional `linear.bias` in
each module folder), and config_sentence_transformers.json with the markers (`query_prefix`,
`document_prefix`: tokens the tokenizer holds), `query_length`, `document_length`,
`do_query_expansion`, `attend_to_expansion_tokens` and `skiplist_words`. Where a key is missing
PyLate's own defaults apply ("[Q] ", "[D] ", 32, 180, expansion on, not attended, punctuation).
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from safetensors.torch import load_file
from tokenizers import Tokenizer
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
from attnserve.model.head_checkpoint import encoder_checkpoint, require_files, special_token
from attnserve.model.splade import module_kind, modules_of
from attnserve.service.artifact import MultiVectorSpec, Pooling

MULTI_VECTOR_OUTPUT = "multi_vectors"
IDENTITY = ("torch.nn.modules.linear.Identity", "torch.nn.Identity")
# PyLate's defaults for a key its config leaves out.
PYLATE_DEFAULTS: dict[str, Any] = {
    "query_prefix": "[Q] ",
    "document_prefix": "[D] ",
    "query_length": 32,
    "document_length": 180,
    "do_query_expansion": True,
    "attend_to_expansion_tokens": False,
    "skiplist_words": list(string.punctuation),
}


class ColbertModel(nn.Module):
    def __init__(self, config: EncoderConfig, projections: list[nn.Linear]) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.projections = nn.ModuleList(projections)
        self.dim = projections[-1].out_features

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
        x = out.last_hidden_state  # (B, T, H)
        for projection in self.projections:
            x = projection(x)  # (B, T, D)
        return F.normalize(x, p=2.0, dim=-1)  # unit rows


def is_colbert(directory: Path) -> bool:
    """A PyLate folder: a PyLate module, or PyLate's keys in config_sentence_transformers.json."""
    if any(str(m.get("type", "")).startswith("pylate.") for m in modules_of(directory)):
        return True
    path = directory / "config_sentence_transformers.json"
    if not path.is_file():
        return False
    raw = json.loads(path.read_text())
    return raw.get("model_type") == "ColBERT" or "query_length" in raw


def read_projection(folder: Path) -> nn.Linear:
    raw = json.loads((folder / "config.json").read_text())
    activation = raw.get("activation_function", IDENTITY[0])
    if activation not in IDENTITY or raw.get("use_residual"):
        raise CheckpointError(
            f"{folder}: a Dense with {activation!r}"
            + (" and a residual" if raw.get("use_residual") else "")
            + " is unsupported (attnserve runs identity projections)"
        )
    bias = bool(raw.get("bias", True))
    linear = nn.Linear(int(raw["in_features"]), int(raw["out_features"]), bias=bias)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{folder}: model.safetensors not found")
    tensors = load_file(str(weights))
    mapping = {f"linear.{kind}": kind for kind in ("weight", *(("bias",) if bias else ()))}
    missing = sorted(set(mapping) - set(tensors))
    if missing:
        raise CheckpointError(f"{folder}: missing {', '.join(missing)}")
    copy_tensors(mapping, tensors, dict(linear.named_parameters()), f" ({folder.name})")
    return linear


def marker_id(tokenizer: Tokenizer, marker: str | None, path: Path) -> int | None:
    if not marker:
        return None
    found = tokenizer.token_to_id(marker)
    if found is None:
        raise CheckpointError(f"{path}: the marker {marker!r} is not a token of tokenizer.json")
    return int(found)


def read_colbert_spec(directory: Path, dim: int) -> MultiVectorSpec:
    path = directory / "config_sentence_transformers.json"
    raw = json.loads(path.read_text()) if path.is_file() else {}
    knobs = {k: raw[k] if raw.get(k) is not None else v for k, v in PYLATE_DEFAULTS.items()}
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    expansion_id: int | None = None
    query_length: int | None = None
    if knobs["do_query_expansion"]:
        mask = special_token(directory, "mask")
        found = tokenizer.token_to_id(mask) if mask else None
        if found is None:
            raise CheckpointError(f"{directory}: query expansion needs the tokenizer's mask token")
        expansion_id, query_length = int(found), int(knobs["query_length"])
    unk = special_token(directory, "unk")
    unk_id = tokenizer.token_to_id(unk) if unk else None
    # PyLate converts each word with convert_tokens_to_ids: a word the vocabulary lacks is <unk>.
    skiplist = {tokenizer.token_to_id(w) for w in knobs["skiplist_words"]}
    skiplist = {unk_id if i is None else i for i in skiplist} - {None}
    return MultiVectorSpec(
        output=MULTI_VECTOR_OUTPUT,
        dim=dim,
        query_marker_id=marker_id(tokenizer, knobs["query_prefix"], path),
        document_marker_id=marker_id(tokenizer, knobs["document_prefix"], path),
        query_length=query_length,
        expansion_id=expansion_id,
        attend_to_expansion=bool(knobs["attend_to_expansion_tokens"]) and expansion_id is not None,
        document_length=int(knobs["document_length"]),
        skiplist_ids=tuple(sorted(int(i) for i in skiplist if i is not None)),
    )


def load_colbert(directory: Path) -> tuple[ColbertModel, Checkpoint, MultiVectorSpec]:
    require_files(directory)
    modules = modules_of(directory)
    kinds = [module_kind(m) for m in modules]
    if not kinds or kinds[0] != "Transformer" or any(k != "Dense" for k in kinds[1:]):
        raise CheckpointError(
            f"{directory / 'modules.json'}: modules {kinds} are unsupported "
            "(attnserve runs a PyLate ColBERT: Transformer, then Dense projections)"
        )
    if len(kinds) < 2:
        raise CheckpointError(f"{directory}: a ColBERT folder without its Dense projection")
    projections = [read_projection(directory / str(m["path"])) for m in modules[1:]]
    family = read_family(directory / "config.json")
    config = read_config(directory, family, Pooling.CLS, False)
    assert isinstance(config, EncoderConfig), f"ColBERT over {family.value} is unsupported"
    if projections[0].in_features != config.hidden_size:
        raise CheckpointError(
            f"{directory}: the first Dense takes {projections[0].in_features} dims, "
            f"the encoder gives {config.hidden_size}"
        )
    spec = read_colbert_spec(directory, projections[-1].out_features)
    unattended = spec.expansion_id is not None and not spec.attend_to_expansion
    if config.positions == "after_padding" and unattended:  # transformers counts them by ids
        raise CheckpointError(
            f"{directory}: unattended query expansion over {family.value} is unsupported"
        )
    model = ColbertModel(config, projections)
    load_state(model.encoder, read_tensors(directory))
    model.eval()
    checkpoint = encoder_checkpoint(directory, config, spec.document_length)
    return model, checkpoint, spec
