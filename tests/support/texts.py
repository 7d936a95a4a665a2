"""The texts parity tests run over."""

from __future__ import annotations

import random

# Short, long, punctuation, digits, non-ASCII, emoji: the texts parity tests run over.
VARIED_TEXTS = [
    "hello",
    "The quick brown fox jumps over the lazy dog.",
    "Wait... what?! No -- really?? (yes; really.)",
    "Prices rose 3.5% in Q3 2024, to $1,234.56 per unit.",
    "Café naïve façade — déjà vu in Zürich.",
    "東京は日本の首都です。",
    "Привет, как дела?",
    "مرحبا بالعالم",
    "emoji 🚀🔥 and symbols ∑∫√ in one line",
    "a",
    " ".join(["Attention is all you need, they said, and the encoder listened."] * 40),
]

# Common words the packaged (uncased WordPiece) tokenizer keeps whole: one token each, so a
# text's last N words tokenise, on their own, exactly as its last N tokens.
ONE_TOKEN_WORDS = (
    "red green blue house river bank water stone tree bird night day city road king queen "
    "boat fire wind rain snow sun moon star field hill"
).split()
# 300 words + [CLS] and [SEP]: over the packaged model's default cap of 256 tokens.
LONG_TEXT = " ".join(random.Random(26).choices(ONE_TOKEN_WORDS, k=300))


def tail_of(text: str, words: int) -> str:
    """The text's last `words` words: what truncating its start to words + 2 tokens keeps."""
    return " ".join(text.split()[-words:])
