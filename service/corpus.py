"""A deterministic, varied text corpus for quality gates: no data set download needed.

Mixes lengths (a word to ~250 tokens), registers (prose, numbers, code-ish, questions),
punctuation, casing and non-ASCII scripts, so a precision variant is judged on the kinds of input
a server really sees rather than on a handful of clean sentences.
"""

from __future__ import annotations

import random

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
