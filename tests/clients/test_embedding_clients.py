"""The embedding clients people run, unchanged, against one attnserve server: each answer equals
attnserve.v1's Embed for the same texts (cosine >= 0.99999), whichever route the library calls.

| library | call | route |
| openai | OpenAI(base_url=.../v1).embeddings.create | POST /v1/embeddings (base64) |
| langchain-openai | OpenAIEmbeddings.embed_documents (1,200 texts) | POST /v1/embeddings |
| haystack-ai | OpenAITextEmbedder, OpenAIDocumentEmbedder | POST /v1/embeddings |
| huggingface_hub | InferenceClient(url).feature_extraction, .sentence_similarity | POST / |
| llama-index TEI | TextEmbeddingsInference(base_url=url).get_text_embedding_batch | POST /embed |
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from attnserve.service.client.client import EmbedderClient
from attnserve.service.corpus import short_sentences
from tests.clients.conftest import EMBEDDER, http_base
from tests.support.servers import ServerThread
from tests.support.texts import VARIED_TEXTS

TEXTS = VARIED_TEXTS[:6]
CLOSE = 0.99999


def native(server: ServerThread, texts: list[str], **options: Any) -> np.ndarray:
    with EmbedderClient(server.target) as client:
        pooled = client.embed(texts, model=EMBEDDER, **options).pooled
    assert pooled is not None
    return pooled


def cosines(got: Any, expected: np.ndarray) -> np.ndarray:
    vectors = np.asarray(got, dtype=np.float64)
    assert vectors.shape == expected.shape
    dots = (vectors * expected).sum(-1)
    return np.asarray(dots / (np.linalg.norm(vectors, axis=-1) * np.linalg.norm(expected, axis=-1)))


def test_openai_sdk(pod: ServerThread) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=http_base(pod) + "/v1", api_key="unused", max_retries=0)
    answer = client.embeddings.create(model=EMBEDDER, input=TEXTS)  # base64 by default
    got = [item.embedding for item in answer.data]
    assert cosines(got, native(pod, TEXTS)).min() >= CLOSE


def test_langchain_openai_embeds_1200_texts_in_its_default_chunks(pod: ServerThread) -> None:
    embeddings_module = pytest.importorskip("langchain_openai")
    texts = short_sentences(1200)
    embedder = embeddings_module.OpenAIEmbeddings(
        model=EMBEDDER,
        base_url=http_base(pod) + "/v1",
        api_key="unused",
        check_embedding_ctx_length=False,  # send text (its default sends tiktoken ids)
        max_retries=0,
    )
    assert embedder.chunk_size == 1000  # its default: 1,000 texts per request, then 200
    vectors = embedder.embed_documents(texts)
    assert len(vectors) == 1200
    picks = [0, 999, 1000, 1199]
    expected = native(pod, [texts[i] for i in picks])
    assert cosines([vectors[i] for i in picks], expected).min() >= CLOSE
    query = embedder.embed_query(TEXTS[0])
    assert cosines([query], native(pod, TEXTS[:1])).min() >= CLOSE


def test_langchain_openai_default_token_ids_get_the_fix_in_the_refusal(pod: ServerThread) -> None:
    """Its default (check_embedding_ctx_length=True) sends tiktoken ids: refused, the message
    naming the model's tokenizer and the flag that makes LangChain send text."""
    embeddings_module = pytest.importorskip("langchain_openai")
    tiktoken = pytest.importorskip("tiktoken")
    openai = pytest.importorskip("openai")
    try:
        tiktoken.get_encoding("cl100k_base")
    except Exception as failure:  # its BPE file is downloaded on first use
        pytest.skip(f"tiktoken cannot load cl100k_base here (offline?): {type(failure).__name__}")
    embedder = embeddings_module.OpenAIEmbeddings(
        model=EMBEDDER, base_url=http_base(pod) + "/v1", api_key="unused", max_retries=0
    )
    with pytest.raises(openai.BadRequestError) as caught:
        embedder.embed_documents(TEXTS)
    assert "check_embedding_ctx_length=False" in str(caught.value)
    assert "WordPiece" in str(caught.value)


def test_haystack_openai_embedders(pod: ServerThread) -> None:
    embedders = pytest.importorskip("haystack.components.embedders")
    haystack = pytest.importorskip("haystack")
    from haystack.utils import Secret

    options = {
        "api_key": Secret.from_token("unused"),
        "model": EMBEDDER,
        "api_base_url": http_base(pod) + "/v1",
    }
    text = embedders.OpenAITextEmbedder(**options).run(text=TEXTS[0])["embedding"]
    assert cosines([text], native(pod, TEXTS[:1])).min() >= CLOSE
    documents = [haystack.Document(content=content) for content in TEXTS]
    embedded = embedders.OpenAIDocumentEmbedder(**options).run(documents=documents)["documents"]
    assert cosines([d.embedding for d in embedded], native(pod, TEXTS)).min() >= CLOSE


def test_huggingface_hub_inference_client_feature_extraction(
    pod: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = pytest.importorskip("huggingface_hub")
    # tests/conftest.py sets HF_HUB_OFFLINE so no reference library reaches the Hub; this client
    # only ever talks to the loopback server, so its offline guard is lifted for this test.
    monkeypatch.setattr(hub.constants, "HF_HUB_OFFLINE", False)
    client = hub.InferenceClient(model=http_base(pod))  # posts to the URL itself: POST /
    vector = client.feature_extraction(TEXTS[0])
    assert cosines(np.asarray(vector).reshape(1, -1), native(pod, TEXTS[:1])).min() >= CLOSE
    raw = client.feature_extraction(TEXTS[1], normalize=False, truncate=True)
    expected = native(pod, TEXTS[1:2], normalize=False)
    np.testing.assert_allclose(np.asarray(raw).reshape(1, -1), expected, rtol=1e-4, atol=1e-5)
    # sentence_similarity posts {"inputs": {"source_sentence", "sentences"}} to the URL too.
    similar = client.sentence_similarity(TEXTS[0], other_sentences=TEXTS[1:3])
    pooled = native(pod, TEXTS[:3])
    np.testing.assert_allclose(similar, pooled[1:] @ pooled[0], atol=1e-5)


def test_llama_index_text_embeddings_inference(pod: ServerThread) -> None:
    module = pytest.importorskip("llama_index.embeddings.text_embeddings_inference")
    embedder = module.TextEmbeddingsInference(model_name=EMBEDDER, base_url=http_base(pod))
    vectors = embedder.get_text_embedding_batch(TEXTS)  # POST /embed {"inputs", "truncate"}
    assert cosines(vectors, native(pod, TEXTS)).min() >= CLOSE
    query = embedder.get_query_embedding(TEXTS[0])
    assert cosines([query], native(pod, TEXTS[:1])).min() >= CLOSE
