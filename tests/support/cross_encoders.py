"""Cross-encoder test checkpoints: random transformers `*ForSequenceClassification` models with
trained-here tokenizers, saved by sentence-transformers' CrossEncoder as a user's folder is.

Weights at unit gain (tests/support/encoder_families.py says why), so that scores spread and a
wrong head, token type or pair template changes the ranking.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tokenizers import Tokenizer

from tests.support.encoder_families import (
    BERT_SPECIALS,
    TokenizerModel,
    build_tokenizer,
    draw_at_unit_gain,
)


@dataclass(frozen=True)
class CrossEncoderShape:
    family: Literal["bert", "xlm-roberta", "roberta", "distilbert"]
    hidden_size: int
    num_layers: int
    num_heads: int
    max_length: int  # CrossEncoder's max_length (tokens per pair)
    labels: tuple[str, ...] = ("LABEL_0",)
    multi_label: bool = False


TOKENIZERS: dict[str, TokenizerModel] = {
    "bert": "wordpiece", "distilbert": "wordpiece", "roberta": "bpe", "xlm-roberta": "unigram",
}  # fmt: skip
CROSS_ENCODER_SHAPES = {
    "bert-reranker": CrossEncoderShape("bert", 64, 2, 4, 128),
    "xlm-roberta-reranker": CrossEncoderShape("xlm-roberta", 64, 2, 4, 128),
    "bert-classifier": CrossEncoderShape(
        "bert", 32, 2, 4, 128, ("contradiction", "entailment", "neutral")
    ),
    "xlm-roberta-tagger": CrossEncoderShape(
        "xlm-roberta", 32, 2, 2, 128, ("news", "sport", "science"), multi_label=True
    ),
    # The other heads' tensor names (RoBERTa: classifier.dense/out_proj; DistilBERT:
    # pre_classifier + ReLU), checked at the model level.
    "roberta-classifier": CrossEncoderShape("roberta", 32, 2, 4, 128, ("no", "yes")),
    "distilbert-reranker": CrossEncoderShape("distilbert", 32, 2, 4, 128),
}

QUERY = "how does attention weigh the tokens of a sentence"
DOCUMENTS = [
    "Attention weighs every token against every other token.",
    "The encoder reads every token of the sentence at once.",
    "Prices rose 3.5% in Q3, to $1,234.56 per unit -- or did they?!",
    "Café naïve façade, déjà vu in Zürich",
    "hello",
    "A cross-encoder reads the query and the document together and scores the pair.",
    " ".join(["Long documents are truncated longest first, as CrossEncoder does."] * 20),
]


def tokenizer_config(shape: CrossEncoderShape) -> dict[str, Any]:
    if shape.family in ("bert", "distilbert"):
        names = dict(zip(("pad", "unk", "cls", "sep", "mask"), BERT_SPECIALS, strict=True))
        special = {f"{role}_token": token for role, token in names.items()}
        return {"tokenizer_class": "BertTokenizer", "do_lower_case": True, **special}
    return {
        "tokenizer_class": "RobertaTokenizer"
        if shape.family == "roberta"
        else "XLMRobertaTokenizer",
        "bos_token": "<s>",
        "cls_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "mask_token": "<mask>",
    }


def build_cross_encoder(directory: Path, shape: CrossEncoderShape) -> Path:
    """A random checkpoint (transformers' own class), saved by CrossEncoder.save_pretrained."""
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        DistilBertConfig,
        DistilBertForSequenceClassification,
        RobertaConfig,
        RobertaForSequenceClassification,
        XLMRobertaConfig,
        XLMRobertaForSequenceClassification,
    )

    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        kind = TOKENIZERS[shape.family]
        tokenizer_file = build_tokenizer(kind, scratch / "tokenizer.json")
        vocab_size = Tokenizer.from_file(str(tokenizer_file)).get_vocab_size() + 8
        labels: dict[str, Any] = {
            "id2label": dict(enumerate(shape.labels)),
            "label2id": {name: i for i, name in enumerate(shape.labels)},
            "num_labels": len(shape.labels),
        }
        if shape.multi_label:
            labels["problem_type"] = "multi_label_classification"
        sizes: dict[str, Any] = {
            "vocab_size": vocab_size,
            "hidden_size": shape.hidden_size,
            "num_hidden_layers": shape.num_layers,
            "num_attention_heads": shape.num_heads,
            "intermediate_size": 2 * shape.hidden_size,
        }
        model: Any
        if shape.family == "bert":
            model = BertForSequenceClassification(
                BertConfig(max_position_embeddings=shape.max_length, **sizes, **labels)
            )
        elif shape.family == "distilbert":
            model = DistilBertForSequenceClassification(
                DistilBertConfig(
                    vocab_size=vocab_size, dim=shape.hidden_size, n_layers=shape.num_layers,
                    n_heads=shape.num_heads, hidden_dim=2 * shape.hidden_size,
                    max_position_embeddings=shape.max_length, pad_token_id=0, **labels,
                )
            )  # fmt: skip
        else:
            config_class = RobertaConfig if shape.family == "roberta" else XLMRobertaConfig
            config: Any = config_class(
                max_position_embeddings=shape.max_length + 2,  # RoBERTa's offset
                type_vocab_size=1,
                pad_token_id=1,
                bos_token_id=0,
                eos_token_id=2,
                **sizes,
                **labels,
            )
            model = (
                RobertaForSequenceClassification(config)
                if shape.family == "roberta"
                else XLMRobertaForSequenceClassification(config)
            )
        torch.manual_seed(0)
        draw_at_unit_gain(model, keep_sinusoidal=False)
        hf = scratch / "hf"
        model.save_pretrained(hf)
        shutil.copy(tokenizer_file, hf / "tokenizer.json")
        (hf / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(shape)))
        CrossEncoder(str(hf), device="cpu", max_length=shape.max_length).save_pretrained(
            str(directory)
        )
    return directory
