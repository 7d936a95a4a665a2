"""The served retrieval heads against their judges, as figures for docs/sparse.md.

    python bench/retrieval_parity.py

Builds the tests' random checkpoints (tests/support/retrieval_checkpoints.py: SPLADE max and
sum, bge-m3, ColBERT), exports each, serves them all in one server and asks over attnserve.v1
(EmbedSparse, EmbedMultiVector, Embed, Rerank), then prints, per model and output, the worst
figure over the tests' texts: for sparse vectors the terms that differ and the largest relative
weight difference (|ours - judge| / max(judge, 1e-3)); for vectors the smallest cosine per
token; for MaxSim the largest relative score difference.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc
import numpy as np

from attnserve.service import wire
from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc
from bench.common import machine_line

# Relative differences are shown for weights at least this large: float32 logits of magnitude
# ~30 round by ~1e-5, which is a large share of a weight near 0.
WEIGHT_FLOOR = 0.1


def sparse_figures(
    vectors: list[tuple[np.ndarray, np.ndarray]], judged: list[dict[int, float]]
) -> str:
    differing, worst, worst_abs = 0, 0.0, 0.0
    for (indices, values), theirs in zip(vectors, judged, strict=True):
        differing += len(set(indices.tolist()) ^ set(theirs))
        for index, value in zip(indices.tolist(), values.tolist(), strict=True):
            if index in theirs:
                diff = abs(value - theirs[index])
                worst_abs = max(worst_abs, diff)
                if theirs[index] >= WEIGHT_FLOOR:
                    worst = max(worst, diff / theirs[index])
    terms = sum(len(t) for t in judged)
    return (
        f"{differing} of {terms} terms differ; max |diff| {worst_abs:.1e}, max relative diff "
        f"{worst:.1e} (weights >= {WEIGHT_FLOOR})"
    )


def min_cosine(ours: list[np.ndarray], theirs: list[np.ndarray]) -> str:
    worst = min(float((a * b).sum(-1).min()) for a, b in zip(ours, theirs, strict=True))
    return f"min cosine per token {worst:.7f} over {sum(len(t) for t in theirs)} tokens"


def main() -> int:
    from attnserve.export.artifact import build_artifact
    from tests.support.retrieval_checkpoints import (
        QUERY,
        TEXTS,
        build_bge_m3,
        build_colbert,
        build_splade,
    )
    from tests.support.servers import ServerThread, server_settings
    from tests.torch.sparse.judges import bge_m3_judge, maxsim_judge, pylate_encode, splade_judge

    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as scratch_dir:
        root = Path(scratch_dir)
        folders = {
            "splade-max": build_splade(root / "splade-max", "max"),
            "splade-sum": build_splade(root / "splade-sum", "sum"),
            "bge-m3": build_bge_m3(root / "bge-m3"),
            "colbert": build_colbert(root / "colbert"),
        }
        entries = []
        for name, folder in folders.items():
            build_artifact(root / f"{name}-artifact", folder, int8=False, fp16=False)
            entries.append(f"{name}={root / f'{name}-artifact'}")
        server = ServerThread(server_settings(entries, intra_op_threads=1, warmup=False))
        try:
            with grpc.insecure_channel(server.target) as channel:
                stub = embedder_pb2_grpc.EmbedderStub(channel)  # type: ignore[no-untyped-call]
                for name in ("splade-max", "splade-sum"):
                    answer = stub.EmbedSparse(pb.SparseRequest(texts=TEXTS, model=name))
                    dense = splade_judge(folders[name], TEXTS)
                    judged = [{int(i): float(r[i]) for i in np.flatnonzero(r > 0)} for r in dense]
                    ours = [(np.asarray(v.indices), np.asarray(v.values)) for v in answer.vectors]
                    rows.append(
                        (name, "EmbedSparse vs SparseEncoder", sparse_figures(ours, judged))
                    )
                m3 = bge_m3_judge(folders["bge-m3"], TEXTS)
                pooled = wire.decode(
                    stub.Embed(pb.EmbedRequest(texts=TEXTS, model="bge-m3")).pooled
                )
                said = min_cosine([pooled], [m3["dense_vecs"]]).replace(" per token", "")
                said = said.replace("tokens", "texts")
                rows.append(("bge-m3", "Embed (dense) vs BGEM3FlagModel", said))
                answer = stub.EmbedSparse(pb.SparseRequest(texts=TEXTS, model="bge-m3"))
                ours = [(np.asarray(v.indices), np.asarray(v.values)) for v in answer.vectors]
                judged = [{int(k): float(v) for k, v in w.items()} for w in m3["lexical_weights"]]
                rows.append(
                    ("bge-m3", "EmbedSparse vs BGEM3FlagModel", sparse_figures(ours, judged))
                )
                multi = stub.EmbedMultiVector(pb.MultiVectorRequest(texts=TEXTS, model="bge-m3"))
                vectors = [wire.decode(r.vectors) for r in multi.results]
                rows.append(("bge-m3", "EmbedMultiVector vs BGEM3FlagModel",
                             min_cosine(vectors, list(m3["colbert_vecs"]))))  # fmt: skip
                query = stub.EmbedMultiVector(
                    pb.MultiVectorRequest(texts=[QUERY], model="colbert",
                                          input_type=pb.INPUT_TYPE_QUERY)
                )  # fmt: skip
                docs = stub.EmbedMultiVector(pb.MultiVectorRequest(texts=TEXTS, model="colbert"))
                judged_q = pylate_encode(folders["colbert"], [QUERY], True)
                judged_d = pylate_encode(folders["colbert"], TEXTS, False)
                ours_all = [wire.decode(query.results[0].vectors)]
                ours_all += [wire.decode(r.vectors) for r in docs.results]
                rows.append(("colbert", "EmbedMultiVector vs PyLate (re-implemented)",
                             min_cosine(ours_all, judged_q + judged_d)))  # fmt: skip
                reranked = stub.Rerank(pb.RerankRequest(query=QUERY, documents=TEXTS,
                                                        model="colbert"))  # fmt: skip
                expected = [maxsim_judge(judged_q[0], d) for d in judged_d]
                worst = max(abs(r.score - expected[r.index]) / abs(expected[r.index])
                            for r in reranked.results)  # fmt: skip
                said = f"max relative score diff {worst:.1e} over {len(TEXTS)} documents"
                rows.append(("colbert", "Rerank (MaxSim) vs PyLate's colbert_scores", said))
        finally:
            server.stop()
    print(machine_line())
    for row in rows:
        print(" | ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
