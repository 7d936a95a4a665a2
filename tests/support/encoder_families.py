"""The BERT-like families' test checkpoints: their shapes and tokenizers (no torch here), and
the builder that makes each a random transformers checkpoint saved by sentence-transformers, as a
user's folder is.

Weights are drawn at unit gain (embeddings N(0, 1), projections N(0, 1/fan_in), norms around 1,
biases around 0), not transformers' N(0, 0.02): at 0.02 attention is nearly uniform and every
position row nearly the same, so a wrong position offset would go unnoticed.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from attnserve.service.corpus import varied_corpus
from tests.support.texts import VARIED_TEXTS

TokenizerModel = Literal["bpe", "unigram", "wordpiece"]


@dataclass(frozen=True)
class EncoderShape:
    family: Literal["roberta", "xlm-roberta", "camembert", "distilbert"]
    tokenizer: TokenizerModel
    hidden_size: int
    num_layers: int
    num_heads: int
    max_positions: int  # config.json's max_position_embeddings (RoBERTa's includes its offset)
    max_seq_length: int  # the sentence-transformers cap
    pooling: Literal["mean", "cls"]
    normalize: bool
    sinusoidal: bool = False  # DistilBERT's sinusoidal_pos_embds
    intermediate_size: int | None = None  # the feed-forward width; None: 2 x hidden


ENCODER_SHAPES = {
    # The cap uses the whole position table: a position offset off by one would index past it.
    # (The server caps its warm-up and calibration shapes at the table: test_small_position_table.)
    "roberta": EncoderShape("roberta", "bpe", 64, 2, 4, 130, 128, "mean", True),
    "roberta-cls": EncoderShape("roberta", "bpe", 48, 3, 6, 42, 40, "cls", False),
    "xlm-roberta": EncoderShape("xlm-roberta", "unigram", 64, 2, 4, 130, 64, "mean", True),
    "xlm-roberta-cls": EncoderShape("xlm-roberta", "unigram", 32, 3, 2, 80, 24, "cls", True),
    "camembert": EncoderShape("camembert", "unigram", 32, 2, 4, 60, 40, "mean", True),
    "distilbert": EncoderShape("distilbert", "wordpiece", 64, 2, 4, 128, 48, "mean", True),
    "distilbert-sinusoidal": EncoderShape(
        "distilbert", "wordpiece", 48, 3, 6, 80, 32, "cls", False, sinusoidal=True
    ),
}
# One checkpoint per family is exported and served end to end (the others are model-tested).
SERVED_SHAPES = ("roberta", "xlm-roberta", "distilbert")

# RoBERTa's and XLM-RoBERTa's special tokens in their own order: <s> 0, <pad> 1, </s> 2, <unk> 3.
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def training_texts() -> list[str]:
    return [*VARIED_TEXTS, *varied_corpus(400)]


def build_tokenizer(kind: TokenizerModel, path: Path, vocab_size: int = 600) -> Path:
    """A small tokenizer of the family's kind, trained here (no download), built as transformers
    builds the family's own (so that AutoTokenizer reads tokenizer.json the same way)."""
    if kind == "bpe":  # RoBERTa: byte-level BPE, <s> A </s> and <s> A </s></s> B </s>
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer: Any = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=ROBERTA_SPECIALS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(training_texts(), trainer)
        tokenizer.post_processor = processors.RobertaProcessing(
            ("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False
        )
    elif kind == "unigram":  # XLM-RoBERTa, CamemBERT: SentencePiece-style Unigram
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(prepend_scheme="always")]
        )
        tokenizer.decoder = decoders.Metaspace(prepend_scheme="always")
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size,
            special_tokens=ROBERTA_SPECIALS,
            unk_token="<unk>",
            show_progress=False,
        )
        tokenizer.train_from_iterator(training_texts(), trainer)
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>",
            pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", 0), ("</s>", 2)],
        )
    else:  # DistilBERT: BERT's lower-cased WordPiece, [CLS] A [SEP]
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=BERT_SPECIALS, show_progress=False
        )
        tokenizer.train_from_iterator(training_texts(), trainer)
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS]:0 $A:0 [SEP]:0",
            pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
            special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
        )
    tokenizer.save(str(path))
    return path


def tokenizer_config(shape: EncoderShape) -> dict[str, Any]:
    """What transformers' save_pretrained writes beside tokenizer.json for the family."""
    if shape.tokenizer == "wordpiece":
        names = dict(zip(("pad", "unk", "cls", "sep", "mask"), BERT_SPECIALS, strict=True))
        special = {f"{role}_token": token for role, token in names.items()}
        return {"tokenizer_class": "DistilBertTokenizer", "do_lower_case": True, **special}
    cls = {"roberta": "RobertaTokenizer", "camembert": "CamembertTokenizer"}.get(
        shape.family, "XLMRobertaTokenizer"
    )
    special = {
        "bos_token": "<s>",
        "cls_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "mask_token": "<mask>",
    }
    return {"tokenizer_class": cls, **special}


def build_encoder_checkpoint(directory: Path, shape: EncoderShape, tokenizer_file: Path) -> Path:
    """A random checkpoint of the family (transformers' own class), saved as a user's
    sentence-transformers folder: SentenceTransformer(modules=[Transformer, Pooling,
    Normalize?]).save()."""
    import json
    import shutil

    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.normalize import Normalize
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling
    from transformers import (
        CamembertConfig,
        CamembertModel,
        DistilBertConfig,
        DistilBertModel,
        RobertaConfig,
        RobertaModel,
        XLMRobertaConfig,
        XLMRobertaModel,
    )

    vocab_size = Tokenizer.from_file(str(tokenizer_file)).get_vocab_size() + 8  # spare rows
    model: Any
    if shape.family == "distilbert":
        config: Any = DistilBertConfig(
            vocab_size=vocab_size,
            dim=shape.hidden_size,
            n_layers=shape.num_layers,
            n_heads=shape.num_heads,
            hidden_dim=shape.intermediate_size or 2 * shape.hidden_size,
            max_position_embeddings=shape.max_positions,
            sinusoidal_pos_embds=shape.sinusoidal,
            pad_token_id=0,
        )
        model = DistilBertModel(config)
    else:
        config_class, model_class = {
            "roberta": (RobertaConfig, RobertaModel),
            "xlm-roberta": (XLMRobertaConfig, XLMRobertaModel),
            "camembert": (CamembertConfig, CamembertModel),
        }[shape.family]
        config = config_class(
            vocab_size=vocab_size,
            hidden_size=shape.hidden_size,
            num_hidden_layers=shape.num_layers,
            num_attention_heads=shape.num_heads,
            intermediate_size=shape.intermediate_size or 2 * shape.hidden_size,
            max_position_embeddings=shape.max_positions,
            type_vocab_size=1,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
        )
        model = model_class(config, add_pooling_layer=False)
    torch.manual_seed(0)
    draw_at_unit_gain(model, keep_sinusoidal=shape.sinusoidal)
    with tempfile.TemporaryDirectory() as scratch:
        model.save_pretrained(scratch)
        shutil.copy(tokenizer_file, Path(scratch) / "tokenizer.json")
        (Path(scratch) / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(shape)))
        transformer = Transformer(scratch, max_seq_length=shape.max_seq_length)
        pooling = Pooling(shape.hidden_size, pooling_mode=shape.pooling)
        modules: list[Any] = [transformer, pooling, *([Normalize()] if shape.normalize else [])]
        SentenceTransformer(modules=modules, device="cpu").save(str(directory))
    return directory


def draw_at_unit_gain(model: Any, keep_sinusoidal: bool) -> None:
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if keep_sinusoidal and "position_embeddings" in name:
                continue  # the fixed sinusoidal table, as DistilBERT builds it
            if "LayerNorm" in name or "layer_norm" in name:
                param.normal_(1.0 if name.endswith("weight") else 0.0, 0.2)
            elif name.endswith("bias"):
                param.normal_(0.0, 0.1)
            elif "embeddings" in name:
                param.normal_(0.0, 1.0)
            else:  # (out, in) projection: unit gain
                param.normal_(0.0, param.shape[1] ** -0.5)


def poison_token(artifact: Path, out: Path, token_id: int) -> Path:
    """A copy of the artifact whose graphs answer NaN for every text holding `token_id` (its
    embedding row set to NaN), files re-hashed: what an fp16 overflow on one rare text does."""
    import shutil

    import numpy as np
    import onnx
    from onnx import numpy_helper

    from attnserve.service.artifact import MANIFEST_FILE, describe_file, read_manifest

    shutil.copytree(artifact, out)
    manifest = read_manifest(out)
    for graph in manifest.graphs:
        model = onnx.load(str(out / graph.file))
        for initializer in model.graph.initializer:
            if initializer.name.endswith("embeddings.token.weight"):
                table = numpy_helper.to_array(initializer).copy()
                table[token_id] = np.nan
                initializer.CopyFrom(numpy_helper.from_array(table, initializer.name))
        onnx.save(model, str(out / graph.file))
    files = {name: describe_file(out / name) for name in manifest.files}
    updated = manifest.model_copy(update={"files": files})
    (out / MANIFEST_FILE).write_text(updated.model_dump_json(indent=2) + "\n")
    return out
