"""The packaged all-MiniLM-L6-v2 in our encoder equals the reference implementations."""

from __future__ import annotations

import numpy as np
import torch

from tests.support.reference import Reference
from tests.support.texts import VARIED_TEXTS


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    similarity: np.ndarray = (a * b).sum(-1) / (
        np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    )
    return similarity


def test_pooled_embeddings_equal_sentence_transformers(reference: Reference) -> None:
    from sentence_transformers import SentenceTransformer

    st_model = SentenceTransformer(str(reference.checkpoint.directory), device="cpu")
    # Like with like: both cap at the checkpoint's max_seq_length (256), our embed default.
    assert st_model.max_seq_length == reference.checkpoint.max_seq_length
    expected = st_model.encode(VARIED_TEXTS, convert_to_numpy=True, batch_size=64)
    with torch.no_grad():
        ours = reference.encoder(**reference.tokenizer(VARIED_TEXTS)).pooled.numpy()
    assert ours.shape == expected.shape == (len(VARIED_TEXTS), 384)
    cosines = cosine(ours, expected)
    assert cosines.min() >= 0.99999, dict(zip(VARIED_TEXTS, cosines.tolist(), strict=True))
    assert np.abs(ours - expected).max() <= 1e-5
    # The long text really was capped: it has more than 256 tokens untruncated.
    assert len(reference.tokenizer.tokenizer.encode(VARIED_TEXTS[-1]).ids) == 256


def test_attention_probabilities_equal_transformers_eager(reference: Reference) -> None:
    from transformers import BertModel

    bert = BertModel.from_pretrained(
        str(reference.checkpoint.directory), attn_implementation="eager"
    )
    assert not bert.training  # from_pretrained returns the model in eval mode
    batch = reference.tokenizer(VARIED_TEXTS[:9])  # mixed lengths: a padded batch
    with torch.no_grad():
        theirs = bert(**batch, output_attentions=True)
        ours = reference.encoder(**batch, output_attentions=True)
    assert len(ours.attentions) == len(theirs.attentions) == 6
    mask = batch["attention_mask"].bool()
    for layer, (a, b) in enumerate(zip(ours.attentions, theirs.attentions, strict=True)):
        assert a.shape == b.shape
        # Compare rows of real query tokens (padded query rows are meaningless in both).
        rows = mask[:, None, :, None].expand_as(a)
        diff = (a - b).abs()[rows].max().item()
        assert diff <= 1e-5, f"layer {layer}: max abs diff {diff:.2e}"
    real = mask[:, None, :]
    hidden_diff = (ours.last_hidden_state - theirs.last_hidden_state).abs()
    assert hidden_diff[real.squeeze(1)].max().item() <= 1e-4


def token_vector(reference: Reference, text: str, word: str) -> torch.Tensor:
    tokens = reference.tokenizer.tokens(text)
    batch = reference.tokenizer([text])
    with torch.no_grad():
        hidden = reference.encoder(**batch).last_hidden_state[0]
    vector: torch.Tensor = hidden[tokens.index(word)]
    return vector


def test_context_changes_the_meaning_of_bank(reference: Reference) -> None:
    money_a = token_vector(reference, "She withdrew cash from the bank to pay the rent.", "bank")
    money_b = token_vector(reference, "She withdrew money from the bank to pay the rent.", "bank")
    river = token_vector(reference, "She sat on the bank of the river to watch the ducks.", "bank")
    same_sense = torch.cosine_similarity(money_a, money_b, dim=0).item()
    other_sense = torch.cosine_similarity(money_a, river, dim=0).item()
    # Measured: cosine 0.990 between the two money sentences, 0.722 money vs river: the
    # distance (1 - cosine) across senses is ~27x the distance within one sense.
    assert same_sense > 0.98
    assert other_sense < 0.8
    assert (1 - other_sense) > 10 * (1 - same_sense)
