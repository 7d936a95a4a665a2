"""The table `attnserve export` ends with: what was built, how big, and how faithful.

Read from the manifest alone (the same figures the server and `attnserve verify` see), so the
summary can never disagree with the artifact: an embedder's graphs serve embeddings, a
cross-encoder's serve rerank or classify scores, each row with the figures its export measured.
Variants asked for but not written (an int8 graph that failed its quality gate) get a row that
says so.
"""

from __future__ import annotations

from pathlib import Path

from attnserve.service.artifact import GraphSpec, Manifest

HEADERS = ("file", "serves", "precision", "size", "measured at export")


def quality(graph: GraphSpec) -> str:
    """A graph's parity figures in words, for every purpose (keys as `export/graphs.py` and
    `export/score_graphs.py` record them); figures of a kind not known here are shown as they
    are, never as NaN."""
    parity = graph.parity
    if "mean_cosine_to_fp32" in parity:
        said = (
            f"cosine to fp32: mean {parity['mean_cosine_to_fp32']:.4f}, "
            f"min {parity['min_cosine_to_fp32']:.4f} over {int(parity['n_texts'])} texts"
        )
        if graph.int8 is not None:
            said += (
                f"; same nearest neighbour {graph.int8.nn_agreement:.2f}, top-10 overlap "
                f"{graph.int8.top10_overlap:.2f}; alone vs in batches "
                f"{graph.int8.batch_invariance:.6f}"
            )
        return said + " (quality gate passed)"
    if "cpu_mean_cosine_to_fp32" in parity:
        return (
            f"cosine to fp32 on CPU: mean {parity['cpu_mean_cosine_to_fp32']:.6f} "
            f"over {int(parity['n_texts'])} texts"
        )
    for prefix, where in (("", ""), ("cpu_", " on CPU")):
        if f"{prefix}mean_spearman_to_fp32" in parity:
            return (
                f"ranking vs fp32{where} (Spearman per query): mean "
                f"{parity[prefix + 'mean_spearman_to_fp32']:.4f}, min "
                f"{parity[prefix + 'min_spearman_to_fp32']:.4f}; score error "
                f"{parity[prefix + 'max_score_error_to_fp32']:.1e} over "
                f"{int(parity['n_pairs'])} pairs (quality gate passed)"
            )
    if "max_abs_scores" in parity:
        said = f"vs PyTorch: scores max |diff| {parity['max_abs_scores']:.1e}"
    elif "max_abs_token_embeddings" in parity:
        said = (
            f"vs PyTorch: max |diff| {parity['max_abs_token_embeddings']:.1e}, "
            f"min cosine {parity['min_cosine_pooled']:.6f}"
        )
    else:
        return ", ".join(f"{key} {value:.3g}" for key, value in sorted(parity.items()))
    if "max_abs_attentions" in parity:
        said += f", attention max |diff| {parity['max_abs_attentions']:.1e}"
    return said


def task(manifest: Manifest) -> str:
    """What the model's graphs answer, in the API's words: embeddings, or a cross-encoder's
    rerank scores (one label) or classify scores (several)."""
    head = manifest.head
    if head is None:
        return "embeddings"
    return "rerank scores" if head.reranker else f"classify scores ({len(head.labels)} labels)"


def serves(graph: GraphSpec, manifest: Manifest) -> str:
    what = task(manifest) + (" + maps" if graph.purpose == "maps" else "")
    providers = "/".join(p.removesuffix("ExecutionProvider") for p in graph.providers)
    return f"{what} ({providers})"


def megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def summary_table(
    manifest: Manifest, out_dir: Path, elapsed_s: float, *, int8_wanted: bool = True
) -> str:
    rows: list[tuple[str, ...]] = [
        (
            g.file,
            serves(g, manifest),
            g.precision,
            megabytes(manifest.files[g.file].bytes),
            quality(g),
        )
        for g in manifest.graphs
    ]
    if int8_wanted and manifest.graph("fast", "int8") is None:
        rows.append(("(int8)", "-", "int8", "-", "not written: no candidate passed the gate"))
    graph_files = {g.file for g in manifest.graphs}
    rows += [
        (name, "-", "-", megabytes(spec.bytes), "")
        for name, spec in manifest.files.items()
        if name not in graph_files
    ]
    widths = [max(len(row[i]) for row in (HEADERS, *rows)) for i in range(len(HEADERS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (HEADERS, *rows)
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    model = manifest.model
    title = (
        f"artifact {out_dir}: {model.name}, {model.num_layers} layers x {model.num_heads} heads, "
        f"{model.hidden_size} dims, sha256 {manifest.artifact_hash[:16]}, built in "
        f"{elapsed_s:.1f} s"
    )
    return "\n".join([title, "", *lines])
