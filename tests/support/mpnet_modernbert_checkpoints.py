"""Tiny random MPNet and ModernBERT checkpoints, built with transformers' own classes and saved as a
user saves them: `save_pretrained` weights and config, a `tokenizer.json` built with the
`tokenizers` library, and sentence-transformers' files written by sentence-transformers itself.

Weights are drawn at unit gain (a linear layer's outputs have the variance of its inputs):
with transformers' 0.02 initialisation the attention is nearly uniform, and a wrong relative
bias, rotary base or window would change the vectors by less than any tolerance notices.
Imported only by tests that need torch.
"""

from __future__ import annotations

import json
import math
import shutil
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


@dataclass(frozen=True)
class MPNetShape:
    hidden_size: int
    num_layers: int
    num_heads: int
    masked_lm: bool  # saved from MPNetForMaskedLM: "mpnet." prefixes and an LM head to ignore
    pooling: Literal["mean", "cls"]
    normalize: bool
    max_seq_length: int = 96


@dataclass(frozen=True)
class ModernBertShape:
    hidden_size: int
    num_layers: int
    num_heads: int
    global_every: int  # every n-th layer global, the others local
    local_attention: int  # the whole window (half of it on each side of the query)
    masked_lm: bool  # saved from ModernBertForMaskedLM: "model." prefixes and an MLM head
    biases: bool  # norm, attention and MLP biases (the published checkpoints have none)
    published_config: bool  # config.json rewritten in the published (pre-transformers-5) form
    pooling: Literal["mean", "cls"]
    normalize: bool
    max_seq_length: int = 96


MPNET_SHAPES = {
    # all-mpnet-base-v2's recipe in miniature: MPNetModel, mean pooling, Normalize.
    "mpnet-mean": MPNetShape(48, 2, 4, masked_lm=False, pooling="mean", normalize=True),
    # Saved from the masked-LM class (its head ignored), CLS pooling, no Normalize, 6 heads of 8.
    "mpnet-mlm-cls": MPNetShape(48, 3, 6, masked_lm=True, pooling="cls", normalize=False),
}
MODERNBERT_SHAPES = {
    # gte-modernbert's recipe in miniature: global every 3rd layer, CLS pooling, Normalize;
    # a 16-token window (8 each side), far shorter than the test texts.
    "modernbert-cls": ModernBertShape(
        64, 4, 4, 3, 16, masked_lm=False, biases=False, published_config=False,
        pooling="cls", normalize=True,
    ),
    # Every 2nd layer global, an 8-token window, biases everywhere, the published config form,
    # saved from the masked-LM class, mean pooling.
    "modernbert-mlm-mean": ModernBertShape(
        48, 4, 3, 2, 8, masked_lm=True, biases=True, published_config=True,
        pooling="mean", normalize=False,
    ),
}  # fmt: skip


def build_wordpiece_tokenizer(path: Path) -> Path:
    """An MPNet-style tokenizer: BERT's normalizer and pre-tokenizer, WordPiece trained here,
    `<s> A </s>` (pairs `<s> A </s></s> B </s>`), `<pad>` at id 1 as in MPNet's vocabulary."""
    specials = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=600, special_tokens=specials, show_progress=False
    )
    tokenizer.train_from_iterator([*VARIED_TEXTS, *varied_corpus(400)], trainer)
    ids = [tokenizer.token_to_id(token) for token in specials]
    assert ids == list(range(len(specials))), ids  # <s> 0, <pad> 1, </s> 2
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tokenizer.save(str(path))
    return path


def build_bpe_tokenizer(path: Path) -> Path:
    """A ModernBERT-style tokenizer: byte-level BPE trained here, `[CLS] A [SEP]`, `[PAD]`."""
    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([*VARIED_TEXTS, *varied_corpus(400)], trainer)
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tokenizer.save(str(path))
    return path


def draw_at_unit_gain(model: Any) -> None:
    """Linear weights ~ N(0, 1/fan_in), embeddings and the relative bias ~ N(0, 1), norms near 1
    and biases near 0 but not at them (exact 1s and 0s would hide mixed-up tensors)."""
    import torch

    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name.lower():
                param.normal_(1.0 if name.endswith("weight") else 0.0, 0.2)
            elif name.endswith("bias") and param.dim() == 1:
                param.normal_(0.0, 0.1)
            elif param.dim() == 2 and "embedding" not in name and "relative" not in name:
                param.normal_(0.0, 1.0 / math.sqrt(param.shape[1]))
            else:
                param.normal_(0.0, 1.0)


def build_mpnet_checkpoint(directory: Path, shape: MPNetShape, tokenizer_file: Path) -> Path:
    from transformers import MPNetConfig, MPNetForMaskedLM, MPNetModel

    vocab = Tokenizer.from_file(str(tokenizer_file)).get_vocab_size()
    config = MPNetConfig(
        vocab_size=vocab + 8,  # spare rows, as real checkpoints have
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        intermediate_size=2 * shape.hidden_size,
        max_position_embeddings=shape.max_seq_length + 2 + 32,  # room past the cap
        layer_norm_eps=1e-5,
    )
    model = (MPNetForMaskedLM if shape.masked_lm else MPNetModel)(config)
    draw_at_unit_gain(model)
    model.save_pretrained(directory)
    write_tokenizer(directory, tokenizer_file, shape.max_seq_length, pad="<pad>")
    write_st_files(
        directory, shape.hidden_size, shape.pooling, shape.normalize, shape.max_seq_length
    )
    return directory


def build_modernbert_checkpoint(
    directory: Path, shape: ModernBertShape, tokenizer_file: Path
) -> Path:
    from transformers import ModernBertConfig, ModernBertForMaskedLM, ModernBertModel

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    special = {name: tokenizer.token_to_id(f"[{name.upper()}]") for name in ("cls", "sep", "pad")}
    layer_types = [
        "sliding_attention" if i % shape.global_every else "full_attention"
        for i in range(shape.num_layers)
    ]
    config = ModernBertConfig(  # type: ignore[call-arg]
        vocab_size=tokenizer.get_vocab_size() + 8,
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        intermediate_size=3 * shape.hidden_size // 2,
        max_position_embeddings=512,
        layer_types=layer_types,
        local_attention=shape.local_attention,
        norm_bias=shape.biases,
        attention_bias=shape.biases,
        mlp_bias=shape.biases,
        pad_token_id=special["pad"],
        cls_token_id=special["cls"],
        bos_token_id=special["cls"],
        sep_token_id=special["sep"],
        eos_token_id=special["sep"],
        attn_implementation="eager",
    )
    model = (ModernBertForMaskedLM if shape.masked_lm else ModernBertModel)(config)
    draw_at_unit_gain(model)
    model.save_pretrained(directory)
    if shape.published_config:
        write_published_config(directory / "config.json", shape)
    write_tokenizer(directory, tokenizer_file, shape.max_seq_length, pad="[PAD]")
    write_st_files(
        directory, shape.hidden_size, shape.pooling, shape.normalize, shape.max_seq_length
    )
    return directory


def write_published_config(path: Path, shape: ModernBertShape) -> None:
    """The form answerdotai/ModernBERT-base's config.json has: a period, not a list, and the
    rotary bases as two numbers."""
    raw = json.loads(path.read_text())
    del raw["layer_types"], raw["rope_parameters"]
    raw["global_attn_every_n_layers"] = shape.global_every
    raw["global_rope_theta"] = 160000.0
    raw["local_rope_theta"] = 10000.0
    path.write_text(json.dumps(raw, indent=2))


def write_tokenizer(directory: Path, tokenizer_file: Path, max_seq_length: int, pad: str) -> None:
    shutil.copy(tokenizer_file, directory / "tokenizer.json")
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "pad_token": pad,
        "model_max_length": max_seq_length,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))


def write_st_files(
    directory: Path, hidden_size: int, pooling: str, normalize: bool, max_seq_length: int
) -> None:
    """Let sentence-transformers write its own files, keep them, keep transformers' weights."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.normalize import Normalize
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    transformer = Transformer(str(directory), max_seq_length=max_seq_length)
    modules = [transformer, Pooling(hidden_size, pooling_mode=pooling)]
    model = SentenceTransformer(
        modules=[*modules, Normalize()] if normalize else modules, device="cpu"
    )
    with tempfile.TemporaryDirectory() as scratch:
        model.save(scratch)
        for name in ("modules.json", "config_sentence_transformers.json", "tokenizer_config.json"):
            shutil.copy(Path(scratch) / name, directory / name)
        for folder in ("1_Pooling", "2_Normalize") if normalize else ("1_Pooling",):
            shutil.copytree(Path(scratch) / folder, directory / folder)
        if (Path(scratch) / "sentence_bert_config.json").exists():
            shutil.copy(Path(scratch) / "sentence_bert_config.json", directory)


# --- the judges: transformers' eager attention and sentence-transformers -------------------------


@dataclass(frozen=True)
class Errors:
    hidden: float  # max |ours - theirs| over real tokens' hidden states
    maps: list[float]  # per layer: max |ours - theirs| over real query rows
    ours: tuple[Any, ...]  # our attention maps, (B, nh, T, T) per layer


def errors_against_transformers(model: Any, directory: Path, batch: dict[str, Any]) -> Errors:
    """Run transformers' eager implementation of the same checkpoint on the same batch."""
    import torch
    from transformers import AutoModel

    theirs = AutoModel.from_pretrained(str(directory), attn_implementation="eager")
    theirs.eval()
    with torch.no_grad():
        expected = theirs(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_attentions=True,
        )
        ours = model(**batch, output_attentions=True, normalize=False)
    real = batch["attention_mask"].bool()  # (B, T)
    hidden = (ours.last_hidden_state - expected.last_hidden_state).abs()[real].max().item()
    assert len(ours.attentions) == len(expected.attentions) == model.config.num_layers
    maps = []
    for a, b in zip(ours.attentions, expected.attentions, strict=True):
        assert a.shape == b.shape
        rows = real[:, None, :, None].expand_as(a)  # padded query rows mean nothing in either
        maps.append((a - b).abs()[rows].max().item())
    return Errors(hidden, maps, ours.attentions)


def sentence_transformers_cosines(model: Any, directory: Path, batch: dict[str, Any]) -> Any:
    """Cosine of our pooled vectors with sentence-transformers' for VARIED_TEXTS."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    st_model = SentenceTransformer(str(directory), device="cpu")
    expected = st_model.encode(VARIED_TEXTS, convert_to_numpy=True)
    with torch.no_grad():
        ours = model(**batch).pooled.numpy()
    assert ours.shape == expected.shape
    return (
        (ours * expected).sum(-1)
        / np.linalg.norm(ours, axis=-1)
        / np.linalg.norm(expected, axis=-1)
    )


def modernbert_base_shape(scratch: Path) -> Path:
    """ModernBERT at ModernBERT-base's layer shape (768 wide, 12 heads, GeGLU 1152, a 128-token
    window, every 3rd layer global), 6 layers, 512 tokens, random weights, CLS pooling and
    Normalize as gte-modernbert: the benchmarks' ModernBERT (bench/families.py,
    bench/family_attention.py)."""
    shape = ModernBertShape(
        768, 6, 12, 3, 128, masked_lm=False, biases=False, published_config=False,
        pooling="cls", normalize=True, max_seq_length=512,
    )  # fmt: skip
    tokenizer = build_wordpiece_tokenizer(scratch / "wordpiece.json")
    return build_modernbert_checkpoint(scratch / "modernbert-base-shape", shape, tokenizer)
