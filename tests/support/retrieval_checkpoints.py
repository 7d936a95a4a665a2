"""Retrieval-head test checkpoints, each a random transformers model (at unit gain, see
tests/support/encoder_families.py) with a trained-here tokenizer, saved as a user's folder is:

- SPLADE: BertForMaskedLM saved by sentence-transformers' SparseEncoder (MLMTransformer +
  SpladePooling, max or sum);
- bge-m3: XLMRobertaModel with FlagEmbedding's sparse_linear.pt and colbert_linear.pt;
- ColBERT: BertModel + a Dense projection, the folder PyLate writes (its modules.json types,
  config_sentence_transformers.json keys, "[Q] "/"[D] " markers added to the tokenizer).
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tokenizers import AddedToken, Tokenizer

from tests.support.encoder_families import (
    BERT_SPECIALS,
    ROBERTA_SPECIALS,
    TokenizerModel,
    build_tokenizer,
    draw_at_unit_gain,
)

HIDDEN, LAYERS, HEADS = 32, 2, 4


@dataclass(frozen=True)
class Sizes:
    hidden: int = HIDDEN
    layers: int = LAYERS
    heads: int = HEADS


DEFAULT = Sizes()
TEXTS = [
    "hello",
    "The encoder reads every token of the sentence at once.",
    "Prices rose 3.5% in Q3, to $1,234.56 per unit -- or did they?!",
    "Café naïve façade, déjà vu in Zürich",
    "attention attention attention weighs the bank by the river",
    " ".join(["Long texts are truncated at the model's cap."] * 12),
]
QUERY = "how does attention weigh the tokens"


def bert_tokenizer_config(max_length: int) -> dict[str, Any]:
    names = dict(zip(("pad", "unk", "cls", "sep", "mask"), BERT_SPECIALS, strict=True))
    return {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": True,
        "model_max_length": max_length,
        **{f"{role}_token": token for role, token in names.items()},
    }


def xlm_roberta_tokenizer_config(max_length: int) -> dict[str, Any]:
    special = dict(zip(("bos", "pad", "eos", "unk", "mask"), ROBERTA_SPECIALS, strict=True))
    return {
        "tokenizer_class": "XLMRobertaTokenizer", "model_max_length": max_length,
        "cls_token": "<s>", "sep_token": "</s>",
        **{f"{role}_token": token for role, token in special.items()},
    }  # fmt: skip


def save_hf(model: Any, tokenizer_file: Path, config: dict[str, Any], out: Path) -> Path:
    import torch

    torch.manual_seed(0)
    draw_at_unit_gain(model, keep_sinusoidal=False)
    model.save_pretrained(out)
    shutil.copy(tokenizer_file, out / "tokenizer.json")
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    return out


def build_splade(
    directory: Path,
    reduction: Literal["max", "sum"] = "max",
    family: Literal["bert", "distilbert", "xlm-roberta"] = "bert",
    activation: Literal["relu", "log1p_relu"] = "relu",
    sizes: Sizes = DEFAULT,
    legacy_module: bool = True,
) -> Path:
    """`legacy_module`: MLMTransformer (older saves), else a fill-mask Transformer (5.4+)."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        DistilBertConfig,
        DistilBertForMaskedLM,
        XLMRobertaConfig,
        XLMRobertaForMaskedLM,
    )

    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        kind: TokenizerModel = "unigram" if family == "xlm-roberta" else "wordpiece"
        tokenizer_file = build_tokenizer(kind, scratch / "tokenizer.json")
        vocab = Tokenizer.from_file(str(tokenizer_file)).get_vocab_size()
        model: Any
        tokenizer_config = bert_tokenizer_config(48)
        if family == "xlm-roberta":
            model = XLMRobertaForMaskedLM(
                XLMRobertaConfig(
                    vocab_size=vocab, hidden_size=sizes.hidden, num_hidden_layers=sizes.layers,
                    num_attention_heads=sizes.heads, intermediate_size=2 * sizes.hidden,
                    max_position_embeddings=66, type_vocab_size=1, pad_token_id=1,
                    bos_token_id=0, eos_token_id=2,
                )
            )  # fmt: skip
            tokenizer_config = xlm_roberta_tokenizer_config(48)
        elif family == "bert":
            model = BertForMaskedLM(
                BertConfig(
                    vocab_size=vocab, hidden_size=sizes.hidden, num_hidden_layers=sizes.layers,
                    num_attention_heads=sizes.heads, intermediate_size=2 * sizes.hidden,
                    max_position_embeddings=64,
                )
            )  # fmt: skip
        else:
            model = DistilBertForMaskedLM(
                DistilBertConfig(
                    vocab_size=vocab, dim=sizes.hidden, n_layers=sizes.layers,
                    n_heads=sizes.heads, hidden_dim=2 * sizes.hidden, max_position_embeddings=64,
                )
            )  # fmt: skip
        hf = save_hf(model, tokenizer_file, tokenizer_config, scratch / "hf")
        transformer = (
            MLMTransformer(str(hf), max_seq_length=48)
            if legacy_module
            else Transformer(str(hf), max_seq_length=48, transformer_task="fill-mask")
        )
        pooling = SpladePooling(reduction, activation_function=activation)
        SparseEncoder(modules=[transformer, pooling], device="cpu").save(str(directory))
    return directory


def build_bge_m3(directory: Path, sizes: Sizes = DEFAULT) -> Path:
    """colbert_linear H -> H, as bge-m3's (what FlagEmbedding builds by default)."""
    colbert_dim = sizes.hidden
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    with tempfile.TemporaryDirectory() as scratch_dir:
        tokenizer_file = build_tokenizer("unigram", Path(scratch_dir) / "tokenizer.json")
        vocab = Tokenizer.from_file(str(tokenizer_file)).get_vocab_size() + 8
        config = XLMRobertaConfig(
            vocab_size=vocab, hidden_size=sizes.hidden, num_hidden_layers=sizes.layers,
            num_attention_heads=sizes.heads, intermediate_size=2 * sizes.hidden,
            max_position_embeddings=66, type_vocab_size=1, pad_token_id=1, bos_token_id=0,
            eos_token_id=2,
        )  # fmt: skip
        tokenizer_config = xlm_roberta_tokenizer_config(64)
        model = XLMRobertaModel(config, add_pooling_layer=False)
        save_hf(model, tokenizer_file, tokenizer_config, directory)
    generator = torch.Generator().manual_seed(1)
    for name, width in (("sparse_linear.pt", 1), ("colbert_linear.pt", colbert_dim)):
        linear = torch.nn.Linear(sizes.hidden, width)
        with torch.no_grad():
            drawn = torch.randn(width, sizes.hidden, generator=generator)
            linear.weight.copy_(drawn * sizes.hidden**-0.5)
            linear.bias.copy_(torch.randn(width, generator=generator) * 0.1)
        torch.save(linear.state_dict(), directory / name)
    return directory


def build_colbert(
    directory: Path,
    dims: tuple[int, ...] = (16,),
    query_length: int = 16,
    document_length: int = 40,
    attend_to_expansion: bool = False,
    sizes: Sizes = DEFAULT,
    bias: bool = False,
) -> Path:
    """A PyLate folder: what ColBERT(model_name_or_path=<BertModel>).save writes (one Dense
    per projection in `dims`)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.dense import Dense
    from sentence_transformers.base.modules.transformer import Transformer
    from torch import nn
    from transformers import BertConfig, BertModel

    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        tokenizer_file = build_tokenizer("wordpiece", scratch / "tokenizer.json")
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.add_tokens(
            [AddedToken("[Q] ", normalized=False), AddedToken("[D] ", normalized=False)]
        )
        tokenizer.save(str(tokenizer_file))
        config = BertConfig(
            vocab_size=tokenizer.get_vocab_size(), hidden_size=sizes.hidden,
            num_hidden_layers=sizes.layers, num_attention_heads=sizes.heads,
            intermediate_size=2 * sizes.hidden, max_position_embeddings=64,
        )  # fmt: skip
        model = BertModel(config, add_pooling_layer=False)
        hf = save_hf(model, tokenizer_file, bert_tokenizer_config(512), scratch / "hf")
        modules: list[Any] = [Transformer(str(hf), max_seq_length=document_length - 1)]
        widths = (sizes.hidden, *dims)
        torch.manual_seed(2)
        for width_in, width_out in itertools.pairwise(widths):
            dense = Dense(width_in, width_out, bias=bias, activation_function=nn.Identity())
            if bias:
                with torch.no_grad():
                    dense.linear.bias.normal_(0.0, 0.1)
            modules.append(dense)
        SentenceTransformer(modules=modules, device="cpu").save(str(directory))
    modules_file = directory / "modules.json"
    saved = json.loads(modules_file.read_text())
    for module, (width_in, width_out) in zip(saved[1:], itertools.pairwise(widths), strict=True):
        # PyLate's Dense reads and writes token_embeddings; its config has no module names.
        module["type"] = "pylate.models.Dense.Dense"
        dense_config = {"in_features": width_in, "out_features": width_out, "bias": bias,
                        "activation_function": "torch.nn.modules.linear.Identity",
                        "use_residual": False}  # fmt: skip
        (directory / module["path"] / "config.json").write_text(json.dumps(dense_config))
    modules_file.write_text(json.dumps(saved, indent=2))
    st_file = directory / "config_sentence_transformers.json"
    raw = json.loads(st_file.read_text())
    raw.update(
        {
            "model_type": "ColBERT",
            "similarity_fn_name": "MaxSim",
            "query_prefix": "[Q] ",
            "document_prefix": "[D] ",
            "query_length": query_length,
            "document_length": document_length,
            "attend_to_expansion_tokens": attend_to_expansion,
            "skiplist_words": list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
            "do_query_expansion": True,
        }
    )
    st_file.write_text(json.dumps(raw, indent=2))
    return directory
