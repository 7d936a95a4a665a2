"""Our MPNet on the real all-mpnet-base-v2 weights equals transformers (hidden states, attention
maps) and sentence-transformers (pooled, normalised vectors) on mixed texts, the longest cut at
the model's 384-token cap. Slow: the weights are 438 MB (tests/support/real_checkpoints.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

import torch

from attnserve.model.checkpoint import Checkpoint, load_checkpoint
from attnserve.model.mpnet import MPNet
from attnserve.model.tokenization import ReferenceTokenizer
from attnserve.service.corpus import varied_corpus
from tests.support.cli import report
from tests.support.mpnet_modernbert_checkpoints import errors_against_transformers
from tests.support.real_checkpoints import all_mpnet_base_v2
from tests.support.texts import VARIED_TEXTS

pytestmark = pytest.mark.slow
LONG = " ".join(["The encoder weighs every token against every other token."] * 60)


@pytest.fixture(scope="module")
def checkpoint_dir() -> Path:
    return all_mpnet_base_v2()


@pytest.fixture(scope="module")
def loaded(checkpoint_dir: Path) -> tuple[Any, Checkpoint]:
    """Our model on the 438 MB of weights, loaded once for the module (the tests only read it)."""
    return load_checkpoint(checkpoint_dir)


@pytest.fixture(scope="module")
def sentence_transformer(checkpoint_dir: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(checkpoint_dir), device="cpu")


def test_the_checkpoint_is_read_as_published(loaded: tuple[Any, Checkpoint]) -> None:
    model, checkpoint = loaded
    assert isinstance(model, MPNet)
    assert (model.config.num_layers, model.config.hidden_size, model.config.num_heads) == (
        12,
        768,
        12,
    )
    assert model.config.max_tokens == 512
    assert checkpoint.max_seq_length == 384  # sentence_bert_config.json
    assert model.config.normalize


def test_hidden_states_and_maps_equal_transformers(
    checkpoint_dir: Path, loaded: tuple[Any, Checkpoint], capsys: pytest.CaptureFixture[str]
) -> None:
    model, checkpoint = loaded
    tokenizer = ReferenceTokenizer(checkpoint.tokenizer_path, checkpoint.max_seq_length)
    batch = tokenizer([*VARIED_TEXTS, LONG])
    assert int(batch["attention_mask"].sum(1).max()) == 384  # the long text is cut at the cap
    errors = errors_against_transformers(model, checkpoint_dir, batch)
    report(capsys, f"all-mpnet-base-v2 vs transformers: hidden {errors.hidden:.1e}, "
           f"maps {max(errors.maps):.1e}")  # fmt: skip
    assert errors.hidden <= 1e-5
    assert max(errors.maps) <= 1e-5


def test_pooled_vectors_equal_sentence_transformers(
    loaded: tuple[Any, Checkpoint], sentence_transformer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    model, checkpoint = loaded
    tokenizer = ReferenceTokenizer(checkpoint.tokenizer_path, checkpoint.max_seq_length)
    texts = [*VARIED_TEXTS, LONG, *varied_corpus(48)]
    expected = sentence_transformer.encode(texts, convert_to_tensor=True)
    with torch.no_grad():
        ours = model(**tokenizer(texts)).pooled
    cosines = torch.nn.functional.cosine_similarity(ours, expected, dim=-1)
    report(capsys, f"all-mpnet-base-v2 vs sentence-transformers: min cosine "
           f"{cosines.min().item():.8f} over {len(texts)} texts")  # fmt: skip
    assert cosines.min().item() >= 0.99999
    torch.testing.assert_close(ours.norm(dim=-1), torch.ones(len(texts)), atol=1e-5, rtol=0)


def test_the_exported_graphs_equal_sentence_transformers(
    checkpoint_dir: Path,
    loaded: tuple[Any, Checkpoint],
    sentence_transformer: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exported as `attnserve export` does (no int8/fp16: time); the fused fast graph and the
    maps graph through ONNX Runtime, against sentence-transformers' vectors."""
    from attnserve.export.artifact import build_artifact
    from attnserve.service.sessions import open_session

    manifest = build_artifact(tmp_path / "mpnet", checkpoint_dir, int8=False, fp16=False)
    model, checkpoint = loaded
    tokenizer = ReferenceTokenizer(
        checkpoint.tokenizer_path, checkpoint.max_seq_length, model.config.pad_token_id
    )
    texts = [*VARIED_TEXTS, LONG]
    feeds = {name: value.numpy() for name, value in tokenizer(texts).items()}
    expected = sentence_transformer.encode(texts, convert_to_tensor=True)
    for purpose in ("fast", "maps"):
        graph = manifest.graph(purpose, "fp32")
        assert graph is not None
        session = open_session(tmp_path / "mpnet" / graph.file)
        pooled = torch.from_numpy(session.run(["pooled"], {k: feeds[k] for k in graph.inputs})[0])
        cosines = torch.nn.functional.cosine_similarity(pooled, expected, dim=-1)
        report(capsys, f"all-mpnet-base-v2 {purpose} graph vs sentence-transformers: min "
               f"cosine {cosines.min().item():.8f}; parity recorded {graph.parity}")  # fmt: skip
        assert cosines.min().item() >= 0.99999
