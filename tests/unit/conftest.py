"""The unit layer: no torch, no server, no model; milliseconds per test.

A tiny word-level tokenizer is built here with the `tokenizers` library ([CLS] text [SEP], like
BERT's), so tokenisation and truncation run for real on the serving install alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

from attnserve.service.server.tokenizer import TextTokenizer

WORDS = "the bank by river money a b c d e f g h w".split()


@pytest.fixture(scope="session")
def tokenizer_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}
    vocab.update({word: 4 + index for index, word in enumerate(WORDS)})
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.json"
    tokenizer.save(str(path))
    return path


@pytest.fixture
def text_tokenizer(tokenizer_file: Path) -> TextTokenizer:
    return TextTokenizer(tokenizer_file, max_tokens=64)
