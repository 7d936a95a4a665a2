"""The int8 gate's held-out texts: real-looking sentences among them, none seen by calibration.

The sentences matter because retrieval agreement over word bags mostly measures near-ties; the
paraphrased facts give every such text a clear nearest neighbour, which is what users retrieve.
"""

from __future__ import annotations

import re
from collections import Counter

from attnserve.service.corpus import calibration_corpus, held_out_corpus
from attnserve.service.sentences import TOPICS, real_sentences


def test_held_out_texts_are_distinct_deterministic_and_unseen_by_calibration() -> None:
    held_out = held_out_corpus(1000)
    assert held_out == held_out_corpus(1000)
    assert len(set(held_out)) == 1000
    assert not set(held_out) & set(calibration_corpus(2048))


def test_a_third_of_the_held_out_texts_are_real_sentences() -> None:
    held_out = set(held_out_corpus(999))
    sentences = set(real_sentences(3 * 999, seed=202))
    assert len(held_out & sentences) == 333


def test_real_sentences_read_as_sentences_and_hold_paraphrases() -> None:
    texts = real_sentences(600, seed=5)
    assert len(set(texts)) == 600
    words = [re.findall(r"[a-z]+", text.lower()) for text in texts]
    assert min(len(w) for w in words) >= 6  # an actor, an action, a thing, a place
    assert all(text[0].isupper() for text in texts)
    # A paraphrase: two texts that state one fact (actor, action, thing and place) differently.
    facts = [
        f"{actor} {action} {thing} {place}".lower()
        for actors, actions, things, places in TOPICS.values()
        for actor in actors
        for action in actions
        for thing in things
        for place in places
    ]
    stated = Counter(next(f for f in facts if f in text.lower()) for text in texts)
    assert 0.15 < sum(1 for n in stated.values() if n > 1) / len(stated) < 0.6
    assert "Kyoto" in " ".join(texts) or "Lisbon" in " ".join(texts)  # names keep their case
