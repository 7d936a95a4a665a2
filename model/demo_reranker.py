"""A reranker to try the rerank API with, offline, from what the install brings.

    python -m attnserve.model.demo_reranker checkpoints/demo-reranker

No package registry ships a trained cross-encoder's weights (a real one comes from the hub:
`hf download cross-encoder/ms-marco-MiniLM-L6-v2 --local-dir checkpoints/ms-marco-MiniLM-L6-v2`).
This writes the packaged all-MiniLM-L6-v2's encoder (real weights) under a seeded random
one-logit head, as sentence-transformers' CrossEncoder saves a `BertForSequenceClassification`
(ms-marco-MiniLM-L6-v2's shape and files): `attnserve export`, `serve` and `rerank` run on it
exactly as on a trained one, but its scores rank nothing meaningfully. It is for trying the
calls, never for relevance.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from attnserve.model.checkpoint import WEIGHTS_FILE, default_checkpoint_dir

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)
SEED = 5
# CrossEncoder's own record of the head's activation (read by model/cross_encoder.py).
CROSS_ENCODER_CONFIG = {
    "activation_fn": "torch.nn.modules.activation.Sigmoid",
    "model_type": "CrossEncoder",
}


def build_demo_reranker(out: Path, seed: int = SEED) -> Path:
    """Write the demo reranker's checkpoint directory at `out`; returns it."""
    source = default_checkpoint_dir()
    config = json.loads((source / "config.json").read_text())
    hidden = int(config["hidden_size"])
    config.update(
        architectures=["BertForSequenceClassification"],
        num_labels=1,
        id2label={"0": "LABEL_0"},
        label2id={"LABEL_0": 0},
    )
    encoder = load_file(str(source / WEIGHTS_FILE))
    # BertForSequenceClassification's names: the encoder (its pooler included) under `bert.`,
    # then the head's one logit, drawn as transformers initialises it (normal, std 0.02).
    tensors = {f"bert.{name}": value for name, value in encoder.items()}
    rng = np.random.default_rng(seed)
    std = float(config.get("initializer_range", 0.02))
    tensors["classifier.weight"] = rng.normal(0.0, std, (1, hidden)).astype(np.float32)
    tensors["classifier.bias"] = np.zeros(1, dtype=np.float32)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / WEIGHTS_FILE))
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "config_sentence_transformers.json").write_text(
        json.dumps(CROSS_ENCODER_CONFIG, indent=2) + "\n"
    )
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, out / name)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m attnserve.model.demo_reranker OUT_DIR", file=sys.stderr)
        return 2
    out = build_demo_reranker(Path(argv[0]))
    print(
        f"demo reranker at {out}: the packaged all-MiniLM-L6-v2 encoder under a random head "
        "(its scores rank nothing meaningfully; for trying the rerank calls)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
