"""The texts parity tests run over."""

from __future__ import annotations

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
