"""The BERT-like families (RoBERTa, XLM-RoBERTa, CamemBERT, DistilBERT) in our encoder equal the
references on random checkpoints drawn at unit gain (tests/encoder_families.py): hidden states
and attention maps equal transformers' eager implementation, pooled vectors equal
sentence-transformers', tokens equal its tokenizer's, and texts are cut at the cap."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from attnserve.model import Encoder, EncoderConfig
from attnserve.model.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from attnserve.model.tokenization import ReferenceTokenizer
from tests.encoder_families import ENCODER_SHAPES
from tests.helpers import VARIED_TEXTS


def load(directory: Path) -> tuple[Encoder, Checkpoint, ReferenceTokenizer]:
    model, checkpoint = load_checkpoint(directory)
    assert isinstance(model, Encoder)
    tokenizer = ReferenceTokenizer(
        checkpoint.tokenizer_path, checkpoint.max_seq_length, model.config.pad_token_id
    )
    return model, checkpoint, tokenizer


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    similarity: np.ndarray = (
        (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    )
    return similarity


def test_hidden_states_and_attention_maps_equal_transformers(
    encoder_family_checkpoint: Path,
) -> None:
    from transformers import AutoModel

    shape = ENCODER_SHAPES[encoder_family_checkpoint.name]
    model, _, tokenizer = load(encoder_family_checkpoint)
    theirs = AutoModel.from_pretrained(str(encoder_family_checkpoint), attn_implementation="eager")
    batch = tokenizer(VARIED_TEXTS)  # mixed lengths, right-padded, the long text cut at the cap
    lengths = batch["attention_mask"].sum(1)
    assert lengths.max() == shape.max_seq_length > lengths.min()
    with torch.no_grad():
        expected = theirs(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_attentions=True,
        )
        ours = model(**batch, output_attentions=True, normalize=False)
    real = batch["attention_mask"].bool()  # (B, T)
    hidden_diff = (ours.last_hidden_state - expected.last_hidden_state).abs()[real].max().item()
    assert hidden_diff <= 1e-5
    assert len(ours.attentions) == len(expected.attentions) == shape.num_layers
    for layer, (a, b) in enumerate(zip(ours.attentions, expected.attentions, strict=True)):
        assert a.shape == b.shape
        rows = real[:, None, :, None].expand_as(a)  # padded query rows mean nothing in either
        assert (a - b).abs()[rows].max().item() <= 1e-5, f"layer {layer}"
        assert torch.all(a[~real[:, None, None, :].expand_as(a)] == 0.0)  # padded keys
    # Unit-gain weights make attention far from uniform: a wrong offset could not hide.
    assert ours.attentions[0][0, :, 1].max().item() > 2.0 / int(lengths[0])


def test_pooled_vectors_and_tokens_equal_sentence_transformers(
    encoder_family_checkpoint: Path,
) -> None:
    from sentence_transformers import SentenceTransformer

    shape = ENCODER_SHAPES[encoder_family_checkpoint.name]
    model, checkpoint, tokenizer = load(encoder_family_checkpoint)
    st_model = SentenceTransformer(str(encoder_family_checkpoint), device="cpu")
    assert st_model.max_seq_length == checkpoint.max_seq_length == shape.max_seq_length
    features = st_model.preprocess(VARIED_TEXTS)
    batch = tokenizer(VARIED_TEXTS)
    width = batch["input_ids"].shape[1]
    assert features["input_ids"].shape[1] == width
    assert torch.equal(features["input_ids"], batch["input_ids"])  # ids, specials, pad id, cut
    assert torch.equal(features["attention_mask"], batch["attention_mask"])
    assert ("token_type_ids" in features) == ("token_type_ids" in model.config.inputs) is False
    expected = st_model.encode(VARIED_TEXTS, convert_to_numpy=True)
    with torch.no_grad():
        ours = model(**batch).pooled.numpy()
    assert ours.shape == expected.shape == (len(VARIED_TEXTS), shape.hidden_size)
    found = cosines(ours, expected)
    assert found.min() >= 0.99999, dict(zip(VARIED_TEXTS, found.tolist(), strict=True))
    if shape.normalize:
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)
    else:
        np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=1e-4)


def test_the_checkpoint_records_its_family(encoder_family_checkpoint: Path) -> None:
    shape = ENCODER_SHAPES[encoder_family_checkpoint.name]
    _, checkpoint, _ = load(encoder_family_checkpoint)
    config = checkpoint.config
    assert isinstance(config, EncoderConfig)
    assert checkpoint.family == shape.family
    assert (config.pooling, config.normalize) == (shape.pooling, shape.normalize)
    assert config.inputs == ("input_ids", "attention_mask")  # one token type, or none
    if shape.family == "distilbert":
        assert config.positions == "absolute"
        assert config.type_vocab_size == 0
    else:
        assert config.positions == "after_padding"
        assert config.pad_token_id == 1
        assert config.max_tokens == shape.max_positions - 2  # rows 0 and 1 never read


def test_a_padded_batch_gives_each_text_its_solo_vector(encoder_family_checkpoint: Path) -> None:
    """Positions count real tokens only: padding after a text never moves its positions."""
    model, _, tokenizer = load(encoder_family_checkpoint)
    texts = VARIED_TEXTS[:5]
    batch = tokenizer(texts)
    with torch.no_grad():
        together = model(**batch)
        for row, n in enumerate(batch["attention_mask"].sum(1).tolist()):
            solo = model(**{k: v[row : row + 1, :n] for k, v in batch.items()})
            torch.testing.assert_close(together.pooled[row], solo.pooled[0], atol=1e-5, rtol=0)


def test_fused_path_equals_explicit_path(encoder_family_checkpoint: Path) -> None:
    model, _, tokenizer = load(encoder_family_checkpoint)
    batch = tokenizer(VARIED_TEXTS[:6])
    with torch.no_grad():
        explicit = model(**batch)
        fused = model(**batch, attention_impl="sdpa")
    real = batch["attention_mask"].bool()
    diff = (fused.last_hidden_state - explicit.last_hidden_state).abs()[real].max().item()
    assert diff <= 1e-5
    torch.testing.assert_close(fused.pooled, explicit.pooled, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        ("drop", "checkpoint is missing tensor(s): "),
        ("extra", "checkpoint has unexpected tensor(s): encoder.layer.9.output.dense.weight"),
    ],
)
def test_a_wrong_tensor_is_named(
    encoder_checkpoints: object, tmp_path: Path, tensor: str, message: str
) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    assert callable(encoder_checkpoints)
    source: Path = encoder_checkpoints("roberta")
    broken = tmp_path / "roberta"
    shutil.copytree(source, broken)
    tensors = load_file(str(broken / "model.safetensors"))
    if tensor == "drop":
        del tensors["encoder.layer.1.attention.self.key.weight"]
        message += "encoder.layer.1.attention.self.key.weight"
    else:
        tensors["encoder.layer.9.output.dense.weight"] = torch.zeros(2, 2)
    save_file(tensors, str(broken / "model.safetensors"))
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_checkpoint(broken)


def test_an_unknown_family_is_refused_naming_the_known_ones(
    encoder_checkpoints: object, tmp_path: Path
) -> None:
    import shutil

    assert callable(encoder_checkpoints)
    broken = tmp_path / "deberta"
    shutil.copytree(encoder_checkpoints("distilbert"), broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "model_type": "deberta-v2"}))
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(broken)
    said = str(raised.value)
    assert "model_type 'deberta-v2' is unsupported" in said
    for family in ("bert", "roberta", "xlm-roberta", "camembert", "distilbert", "qwen3"):
        assert family in said


def test_the_tokenizer_json_holds_the_familys_specials_and_pair_template(
    encoder_family_checkpoint: Path,
) -> None:
    """What the artifact ships (tokenizer.json, read by the server as is) tokenises singles and
    pairs as the family's transformers tokenizer does: <s> a </s></s> b </s> for RoBERTa's
    family, [CLS] a [SEP] b [SEP] for DistilBERT; no token types where the family has none."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    shape = ENCODER_SHAPES[encoder_family_checkpoint.name]
    ours = Tokenizer.from_file(str(encoder_family_checkpoint / "tokenizer.json"))
    theirs = AutoTokenizer.from_pretrained(str(encoder_family_checkpoint))
    assert "token_type_ids" not in theirs.model_input_names
    first, second = "The bank by the river.", "Café naïve façade"
    for text in VARIED_TEXTS[:-1]:
        assert ours.encode(text).ids == theirs(text)["input_ids"]
    pair = ours.encode(first, second)
    assert pair.ids == theirs(first, second)["input_ids"]
    specials = [
        token
        for token, special in zip(pair.tokens, pair.special_tokens_mask, strict=True)
        if special
    ]
    if shape.family == "distilbert":
        assert specials == ["[CLS]", "[SEP]", "[SEP]"]
    else:
        assert specials == ["<s>", "</s>", "</s>", "</s>"]
        assert theirs.pad_token_id == 1
