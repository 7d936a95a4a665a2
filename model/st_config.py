"""What a checkpoint's sentence-transformers files say: pooling, normalisation, the token cap and
the named instruction prompts.

These files turn a bare transformer into the embedding model its authors published: without them
a decoder would be pooled and prompted differently from how it was trained. A module or a pooling
setting attnserve does not implement is refused here, by name, instead of being skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnserve.service.artifact import Pooling

# The pipeline attnserve reproduces: transformer -> pooling -> (optional) normalisation.
KNOWN_MODULES = ("Transformer", "Pooling", "Normalize")
ST_POOLING = {"mean": Pooling.MEAN, "cls": Pooling.CLS, "lasttoken": Pooling.LAST}
LEGACY_POOLING = {
    "pooling_mode_mean_tokens": Pooling.MEAN,
    "pooling_mode_cls_token": Pooling.CLS,
    "pooling_mode_lasttoken": Pooling.LAST,
}


NO_LIMIT = 1_000_000_000  # transformers writes int(1e30) for a tokenizer without a cap


class SentenceTransformersError(ValueError):
    """The sentence-transformers files ask for something attnserve does not do; names it."""


@dataclass(frozen=True)
class SentenceTransformersConfig:
    pooling: Pooling
    normalize: bool
    max_seq_length: int | None
    prompts: dict[str, str] = field(default_factory=dict)  # name -> text prepended to inputs
    default_prompt_name: str | None = None  # applied when a request names none


def read_st_config(directory: Path, default_pooling: Pooling) -> SentenceTransformersConfig:
    """The files' settings, or the family's defaults (no normalisation, no prompts) without them."""
    pooling, normalize = default_pooling, False
    modules_file = directory / "modules.json"
    if modules_file.exists():
        for module in json.loads(modules_file.read_text()):
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            if kind not in KNOWN_MODULES:
                raise SentenceTransformersError(
                    f"{modules_file}: module {module.get('type')!r} is unsupported "
                    f"(attnserve runs {', '.join(KNOWN_MODULES)})"
                )
            if kind == "Normalize":
                normalize = True
            if kind == "Pooling":
                config_file = directory / module["path"] / "config.json"
                pooling = pooling_from_st(json.loads(config_file.read_text()))
    prompts, default_prompt_name = read_prompts(directory)
    return SentenceTransformersConfig(
        pooling, normalize, read_max_seq_length(directory), prompts, default_prompt_name
    )


def read_max_seq_length(directory: Path) -> int | None:
    """The token cap sentence-transformers applies: `max_seq_length` in sentence_bert_config.json
    (older saves), else the tokenizer's `model_max_length` (sentence-transformers 6 saves it
    there), unless that is transformers' "no limit" placeholder."""
    st_config = directory / "sentence_bert_config.json"
    if st_config.exists():
        cap = json.loads(st_config.read_text()).get("max_seq_length")
        if cap is not None:
            return int(cap)
    tokenizer_config = directory / "tokenizer_config.json"
    if tokenizer_config.exists():
        cap = json.loads(tokenizer_config.read_text()).get("model_max_length")
        if isinstance(cap, int) and cap < NO_LIMIT:
            return cap
    return None


def pooling_from_st(cfg: dict[str, Any]) -> Pooling:
    """Either format: `pooling_mode: "lasttoken"` (sentence-transformers 6) or the older
    `pooling_mode_lasttoken: true` flags."""
    if cfg.get("include_prompt", True) is False:
        raise SentenceTransformersError(
            "pooling that leaves out the prompt's tokens (include_prompt: false) is unsupported"
        )
    mode = cfg.get("pooling_mode")
    if mode is None:
        flagged = [pooling for flag, pooling in LEGACY_POOLING.items() if cfg.get(flag)]
        if len(flagged) == 1:
            return flagged[0]
    elif isinstance(mode, str) and mode in ST_POOLING:
        return ST_POOLING[mode]
    raise SentenceTransformersError(f"unsupported sentence-transformers pooling config: {cfg}")


def read_prompts(directory: Path) -> tuple[dict[str, str], str | None]:
    """`prompts` and `default_prompt_name` from config_sentence_transformers.json."""
    path = directory / "config_sentence_transformers.json"
    if not path.exists():
        return {}, None
    raw = json.loads(path.read_text())
    prompts = raw.get("prompts") or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in prompts.items()):
        raise SentenceTransformersError(f"{path}: prompts must map names to texts: {prompts}")
    default = raw.get("default_prompt_name")
    if default is not None and default not in prompts:
        raise SentenceTransformersError(
            f"{path}: default_prompt_name {default!r} is not one of the prompts {sorted(prompts)}"
        )
    return dict(prompts), default
