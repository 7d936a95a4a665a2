"""The PyTorch retrieval heads (model/splade.py, model/bge_m3.py, model/colbert.py) against the
libraries users run (tests/torch/sparse/judges.py) on random checkpoints saved as users save
them: the same non-zero terms and weights, the same per-token vectors, the same MaxSim."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer

from attnserve.model.bge_m3 import is_bge_m3, load_bge_m3, read_dropped_ids
from attnserve.model.checkpoint import CheckpointError
from attnserve.model.colbert import is_colbert, load_colbert
from attnserve.model.splade import is_splade, load_splade
from attnserve.model.tokenization import ReferenceTokenizer
from attnserve.service import multi_vector
from attnserve.service.sparse import from_tokens, from_vocabulary
from tests.support.retrieval_checkpoints import QUERY, TEXTS
from tests.torch.sparse.judges import (
    bge_m3_judge,
    maxsim_judge,
    multi_vector_encoder_judge,
    pylate_encode,
    splade_judge,
)


@pytest.mark.parametrize("name", ["splade-max", "splade-sum", "splade-xlm-roberta"])
def test_splade_terms_equal_sparse_encoder(
    name: str, retrieval_checkpoints: Callable[[str], Path]
) -> None:
    folder = retrieval_checkpoints(name)
    assert is_splade(folder)
    assert not is_colbert(folder)
    model, checkpoint = load_splade(folder)
    assert model.spec.reduction == ("sum" if name == "splade-sum" else "max")
    tokenizer = ReferenceTokenizer(
        checkpoint.tokenizer_path, checkpoint.max_seq_length, model.config.pad_token_id
    )
    with torch.no_grad():
        ours = model(**tokenizer(TEXTS)).numpy()
    expected = splade_judge(folder, TEXTS)
    assert ours.shape == expected.shape == (len(TEXTS), model.config.vocab_size)
    for row in range(len(TEXTS)):
        mine, theirs = from_vocabulary(ours[row]), from_vocabulary(expected[row])
        np.testing.assert_array_equal(mine.indices, theirs.indices)
        # float32 logits of magnitude ~30 carry ~1e-5 of rounding into a weight near 0
        np.testing.assert_allclose(mine.values, theirs.values, rtol=1e-4, atol=1e-5)
        assert 0 < len(theirs.indices) < model.config.vocab_size  # sparse, not empty


def test_bge_m3_three_outputs_equal_flag_embedding(
    retrieval_checkpoints: Callable[[str], Path],
) -> None:
    folder = retrieval_checkpoints("bge-m3")
    assert is_bge_m3(folder)
    assert not is_splade(folder)
    model, checkpoint = load_bge_m3(folder)
    tokenizer = ReferenceTokenizer(checkpoint.tokenizer_path, 64, model.config.pad_token_id)
    batch = tokenizer(TEXTS)
    with torch.no_grad():
        out = model(**batch)
    judged = bge_m3_judge(folder, TEXTS)
    dense = torch.nn.functional.normalize(out.pooled, dim=-1).numpy()
    np.testing.assert_allclose(dense, judged["dense_vecs"], atol=1e-5)
    dropped = read_dropped_ids(folder)
    mask = batch["attention_mask"].numpy().astype(bool)
    for row in range(len(TEXTS)):
        ids = batch["input_ids"][row].numpy()[mask[row]]
        mine = from_tokens(ids, out.token_weights[row].numpy()[mask[row]], dropped)
        theirs = judged["lexical_weights"][row]
        assert [str(i) for i in mine.indices] == sorted(theirs, key=int)
        expected = np.array([theirs[str(i)] for i in mine.indices], dtype=np.float32)
        np.testing.assert_allclose(mine.values, expected, rtol=1e-4, atol=1e-6)
        vectors = out.multi_vectors[row].numpy()[1 : int(mask[row].sum())]
        colbert = judged["colbert_vecs"][row]
        assert vectors.shape == colbert.shape
        assert (vectors * colbert).sum(-1).min() >= 0.99999


def colbert_vectors(folder: Path, texts: list[str], is_query: bool) -> list[np.ndarray]:
    """Ours: tokenizer.json capped, markers and expansion (service/multi_vector.py), the model."""
    model, checkpoint, spec = load_colbert(folder)
    tokenizer = Tokenizer.from_file(str(checkpoint.tokenizer_path))
    tokenizer.no_padding()
    cap = multi_vector.token_cap(spec, is_query, checkpoint.max_seq_length)
    tokenizer.enable_truncation(max_length=cap)
    prepared = [multi_vector.prepare(e.ids, spec, is_query) for e in tokenizer.encode_batch(texts)]
    feeds = multi_vector.batch(prepared, model.config.pad_token_id)
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).numpy()
    return [
        out[row][multi_vector.kept_rows(text, spec, is_query)] for row, text in enumerate(prepared)
    ]


@pytest.mark.parametrize("name", ["colbert", "colbert-attended"])
def test_colbert_vectors_and_maxsim_equal_pylate(
    name: str, retrieval_checkpoints: Callable[[str], Path]
) -> None:
    folder = retrieval_checkpoints(name)
    assert is_colbert(folder)
    assert not is_splade(folder)
    assert not is_bge_m3(folder)
    queries = [QUERY, "bank"]
    for texts, is_query in ((queries, True), (TEXTS, False)):
        ours = colbert_vectors(folder, texts, is_query)
        theirs = pylate_encode(folder, texts, is_query)
        for mine, judged in zip(ours, theirs, strict=True):
            assert mine.shape == judged.shape
            assert (mine * judged).sum(-1).min() >= 0.99999
        if is_query:
            assert all(len(q) == 16 for q in ours)  # expanded to query_length
    query = colbert_vectors(folder, [QUERY], True)[0]
    documents = colbert_vectors(folder, TEXTS, False)
    judged_query = pylate_encode(folder, [QUERY], True)[0]
    judged_docs = pylate_encode(folder, TEXTS, False)
    ours_scores = [multi_vector.maxsim(query, d) for d in documents]
    their_scores = [maxsim_judge(judged_query, d) for d in judged_docs]
    np.testing.assert_allclose(ours_scores, their_scores, rtol=1e-4)


def test_colbert_expansion_matters(retrieval_checkpoints: Callable[[str], Path]) -> None:
    """The unattended and attended checkpoints share weights: only the expansion's attention
    differs, and so do the real tokens' vectors."""
    plain = colbert_vectors(retrieval_checkpoints("colbert"), [QUERY], True)[0]
    attended = colbert_vectors(retrieval_checkpoints("colbert-attended"), [QUERY], True)[0]
    assert (plain * attended).sum(-1).min() < 0.999


def test_splade_refuses_a_static_query_side(
    retrieval_checkpoints: Callable[[str], Path], tmp_path: Path
) -> None:
    import json
    import shutil

    folder = shutil.copytree(retrieval_checkpoints("splade-max"), tmp_path / "router")
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(0, {"idx": 0, "name": "q", "path": "q", "type": "x.SparseStaticEmbedding"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(CheckpointError, match="SparseStaticEmbedding"):
        load_splade(folder)


def test_bge_m3_refuses_a_misshapen_head(
    retrieval_checkpoints: Callable[[str], Path], tmp_path: Path
) -> None:
    import shutil

    folder = shutil.copytree(retrieval_checkpoints("bge-m3"), tmp_path / "m3")
    torch.save({"weight": torch.zeros(2, 7), "bias": torch.zeros(2)}, folder / "sparse_linear.pt")
    with pytest.raises(CheckpointError, match=r"sparse_linear\.pt"):
        load_bge_m3(folder)


@pytest.mark.parametrize("name", ["colbert", "colbert-attended"])
def test_colbert_vectors_equal_sentence_transformers_multi_vector_encoder(
    name: str, retrieval_checkpoints: Callable[[str], Path]
) -> None:
    """The second judge, on the texts without an [UNK] token (where it departs from PyLate:
    judges.py); on the one with, it keeps the [UNK] row that PyLate and we leave out."""
    folder = retrieval_checkpoints(name)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    known = [t for t in TEXTS if "[UNK]" not in tokenizer.encode(t).tokens]
    assert 0 < len(known) < len(TEXTS)
    for texts, is_query in (([QUERY], True), (known, False)):
        ours = colbert_vectors(folder, texts, is_query)
        theirs = multi_vector_encoder_judge(folder, texts, is_query)
        for mine, judged in zip(ours, theirs, strict=True):
            assert mine.shape == judged.shape
            assert (mine * judged).sum(-1).min() >= 0.99999
    unknown = [t for t in TEXTS if t not in known]
    ours = colbert_vectors(folder, unknown, False)
    theirs = multi_vector_encoder_judge(folder, unknown, False)
    assert [len(v) + 1 for v in ours] == [len(v) for v in theirs]
