"""Deterministic text mixes, made here: no data set download, the same texts on every machine.

Named mixes serve these jobs:
- `varied`: lengths from a word to ~250 tokens, prose, numbers, code-ish snippets, questions,
  casing and non-ASCII scripts: the fp16 check judges its variant on it.
- `calibration` and `held-out`: int8's two sides, kept apart. The calibration mix (varied,
  mixed and real-looking sentences of their own seeds) fixes int8's activation scales at export;
  the held-out mix (other seeds, duplicates removed, and no text that calibration saw) judges
  the result; a third of it is real-looking sentences (`service.sentences`) with paraphrases.
- `mixed`: realistic serving traffic, mostly short queries, some paragraphs, a few documents
  (~40 tokens on average, up to ~240): the load tester's and the benchmarks' default.
- `short`: short sentences of 8-20 words (~19 tokens): the short-query regime.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np

from attnserve.service.sentences import real_sentences

SUBJECTS = [
    "the central bank", "my grandmother", "a small startup", "the river", "this encoder",
    "the committee", "an old lighthouse", "the football team", "our database", "a hungry cat",
    "the new policy", "the orchestra", "a distant galaxy", "the city council", "her thesis",
]  # fmt: skip
VERBS = [
    "raised", "ignored", "explained", "flooded", "compressed", "celebrated", "rewrote",
    "predicted", "borrowed", "painted", "measured", "cancelled", "translated", "shipped",
]  # fmt: skip
OBJECTS = [
    "interest rates", "the recipe", "a quarterly report", "the meadow", "every token",
    "the budget", "its warning light", "the final match", "three indexes", "the sofa",
    "tax credits", "a symphony", "dark matter", "parking rules", "the experiment",
]  # fmt: skip
TAILS = [
    "yesterday", "after a long debate", "without telling anyone", "in 2024", "at 3:45 pm",
    "for $1,299.99", "by 12.5%", "(again!)", "-- or so they say", "; nobody noticed",
    "in Zürich", "near Kraków", "à la française", "東京で", "в Москве", "في القاهرة", "🚀🔥",
]  # fmt: skip
SNIPPETS = [
    "SELECT name FROM users WHERE id = 42;",
    "def f(x): return x ** 2",
    "ERROR 503: upstream timed out after 30s",
    "https://example.com/a/b?c=d&e=f",
    "Q: is attention all you need? A: mostly.",
    "naïve café résumé coöperate",
    "¿Dónde está la biblioteca?",
    "Ça va? Très bien, merci.",
    "Straße, Übergrößenträger, Fußgängerzone",
    "ひらがなとカタカナと漢字",
    "Ελληνικά γράμματα",
    "#hashtag @mention $TICKER 100% ~approx",
]


def sentence(rng: random.Random) -> str:
    text = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}"
    style = rng.random()
    if style < 0.15:
        text = text.upper()
    elif style < 0.3:
        text = text.capitalize() + "?"
    else:
        text = text.capitalize() + "."
    return text


def text_of(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.1:
        return rng.choice(OBJECTS + SUBJECTS).split()[-1]  # a single word
    if kind < 0.25:
        return rng.choice(SNIPPETS)
    sentences = rng.choice([1, 1, 2, 3, 5, 8, 13, 20])
    parts = [
        sentence(rng) if rng.random() > 0.15 else rng.choice(SNIPPETS) for _ in range(sentences)
    ]
    return " ".join(parts)


def varied_corpus(count: int = 1000, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [text_of(rng) for _ in range(count)]


# --- serving traffic -------------------------------------------------------------------------

WORDS = (
    "the a of and to in model server request batch token river bank money market attention "
    "layer query key value fast slow city night music data cloud price rain sun open close "
    "embedding vector search engine latency throughput kubernetes cluster node pod replica "
    "language sentence meaning context window memory cache disk network packet"
).split()
# Lengths in words and their weights: mostly short queries, some paragraphs, a few documents.
LENGTHS = ((3, 12, 0.45), (12, 40, 0.35), (40, 120, 0.15), (120, 220, 0.05))


def mixed_lengths(count: int = 2000, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        low, high, _weight = rng.choices(LENGTHS, weights=[w for *_, w in LENGTHS])[0]
        words = rng.choices(WORDS, k=rng.randint(low, high))
        texts.append(" ".join(words).capitalize() + rng.choice([".", "?", "!", ""]))
    return texts


def short_sentences(count: int = 2048, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [
        " ".join(rng.choice(WORDS, size=int(rng.integers(8, 21)))).capitalize() + "."
        for _ in range(count)
    ]


def calibration_corpus(count: int = 512) -> list[str]:
    """Thirds of varied texts, serving traffic and real-looking sentences: the ranges int8 must
    cover, from a word to ~250 tokens."""
    third = count // 3
    return (
        varied_corpus(count - 2 * third, seed=1)
        + mixed_lengths(third, seed=101)
        + real_sentences(third, seed=201)
    )


def held_out_corpus(count: int = 1000) -> list[str]:
    """`count` distinct texts, in thirds varied, serving traffic and real-looking sentences,
    none of them a calibration text.

    Distinct, because retrieval agreement ranks every text against the others: a duplicate
    would tie with itself. Drawn from seeds of their own and filtered against the largest
    calibration mix the export uses, so "held out" holds by construction."""
    seen = set(calibration_corpus(CALIBRATION_TEXTS_MAX))
    picked: dict[str, None] = {}
    third = count // 3
    sources = (
        varied_corpus(20 * count, seed=2),
        mixed_lengths(20 * count, seed=102),
        real_sentences(3 * count, seed=202),
    )
    for source, wanted in zip(sources, (count - 2 * third, count - third, count), strict=True):
        for text in source:
            if len(picked) >= wanted:
                break
            if text not in seen:
                picked.setdefault(text)
    if len(picked) < count:
        raise ValueError(f"only {len(picked)} distinct held-out texts, {count} asked")
    return list(picked)


CALIBRATION_TEXTS_MAX = 2048  # held-out texts are never among the first this many calibration ones

MIXES: dict[str, Callable[[int], list[str]]] = {
    "mixed": mixed_lengths,
    "short": short_sentences,
    "varied": varied_corpus,
    "calibration": calibration_corpus,
    "held-out": held_out_corpus,
}


def load_texts(source: str = "mixed", count: int = 2000) -> list[str]:
    """A named mix (`count` texts) or a file with one text per line."""
    if source in MIXES:
        return MIXES[source](count)
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"{source}: neither a mix ({', '.join(MIXES)}) nor a file")
    texts = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not texts:
        raise ValueError(f"corpus {source} has no non-empty lines")
    return texts
