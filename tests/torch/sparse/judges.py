"""The judges, each the library a user runs: sentence-transformers' SparseEncoder (SPLADE),
FlagEmbedding's BGEM3FlagModel (bge-m3), and for ColBERT a re-implementation of PyLate's
`ColBERT.tokenize` + `encode` written from its source (lightonai/pylate, pylate/models/colbert.py:
PyLate 1.6 requires torch<2.12, so it is not installed) over transformers' own BertModel, with
numpy for the projection, normalisation, skiplist and MaxSim."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file


def splade_judge(folder: Path, texts: list[str]) -> np.ndarray:
    """(texts, V) dense SPLADE vectors from SparseEncoder.encode."""
    from sentence_transformers import SparseEncoder

    model = SparseEncoder(str(folder), device="cpu")
    encoded = model.encode(texts, convert_to_tensor=True)
    return np.asarray(encoded.to_dense().numpy(), dtype=np.float32)


def bge_m3_judge(folder: Path, texts: list[str]) -> dict[str, Any]:
    from FlagEmbedding import BGEM3FlagModel

    model = BGEM3FlagModel(str(folder), use_fp16=False, devices="cpu")
    return dict(
        model.encode(
            texts, max_length=64, return_dense=True, return_sparse=True,
            return_colbert_vecs=True,
        )
    )  # fmt: skip


def pylate_encode(folder: Path, texts: list[str], is_query: bool) -> list[np.ndarray]:
    """PyLate's ColBERT.encode(texts, is_query=...) for a [Transformer, Dense] folder."""
    import torch
    from transformers import AutoTokenizer, BertModel

    config = json.loads((folder / "config_sentence_transformers.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    prefix = config["query_prefix"] if is_query else config["document_prefix"]
    prefix_id = tokenizer.convert_tokens_to_ids(prefix)
    assert isinstance(prefix_id, int)
    length = config["query_length"] if is_query else config["document_length"]
    expand = is_query and config["do_query_expansion"]
    # tokenize: the cap less the marker; queries padded to it with [MASK] (PyLate sets pad = mask)
    tokenizer.pad_token_id = tokenizer.mask_token_id
    features = tokenizer(
        texts, truncation=True, max_length=length - 1, return_tensors="pt",
        padding="max_length" if expand else True,
    )  # fmt: skip

    def insert(tensor: torch.Tensor, value: int) -> torch.Tensor:
        column = torch.full((tensor.shape[0], 1), value, dtype=tensor.dtype)
        return torch.cat([tensor[:, :1], column, tensor[:, 1:]], dim=1)

    ids = insert(features["input_ids"], prefix_id)
    mask = insert(features["attention_mask"], 1)
    types = insert(features["token_type_ids"], 0)
    if is_query and config["attend_to_expansion_tokens"]:
        mask.fill_(1)
    bert = BertModel.from_pretrained(str(folder), add_pooling_layer=False)
    bert.train(False)
    with torch.no_grad():
        hidden = bert(input_ids=ids, attention_mask=mask, token_type_ids=types)
    states = hidden.last_hidden_state.numpy()
    projected = states
    for module in json.loads((folder / "modules.json").read_text())[1:]:  # each Dense
        tensors = load_file(str(folder / module["path"] / "model.safetensors"))
        projected = projected @ tensors["linear.weight"].T  # (B, T, D), identity activation
        if "linear.bias" in tensors:
            projected = projected + tensors["linear.bias"]
    skip = {tokenizer.convert_tokens_to_ids(w) for w in config["skiplist_words"]}
    out = []
    for row in range(len(texts)):
        if is_query and expand:
            keep = np.ones(ids.shape[1], dtype=bool)
        elif is_query:
            keep = mask[row].numpy().astype(bool)
        else:
            keep = mask[row].numpy().astype(bool) & ~np.isin(ids[row].numpy(), list(skip))
        vectors = projected[row][keep]
        out.append(vectors / np.linalg.norm(vectors, axis=-1, keepdims=True))
    return out


def maxsim_judge(query: np.ndarray, document: np.ndarray) -> float:
    """PyLate's colbert_scores for one pair: sum over query tokens of the best dot product."""
    return float(np.einsum("qd,nd->qn", query, document).max(axis=1).sum())


def multi_vector_encoder_judge(folder: Path, texts: list[str], is_query: bool) -> list[np.ndarray]:
    """sentence-transformers' own MultiVectorEncoder, which loads PyLate folders: a second
    ColBERT judge, written apart from ours. It departs from PyLate on purpose in one place: a
    skiplist word the vocabulary lacks (PyLate: <unk>, so [UNK] tokens are dropped) is dropped
    from the skiplist instead."""
    from sentence_transformers import MultiVectorEncoder

    model = MultiVectorEncoder(str(folder), device="cpu")
    encoded = model.encode_query(texts) if is_query else model.encode_document(texts)
    return [np.asarray(vectors, dtype=np.float32) for vectors in encoded]
