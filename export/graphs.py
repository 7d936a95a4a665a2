"""torch -> ONNX: the fast graph (fused attention) and the maps graph (exact probabilities).

The fast graph starts from the model's `scaled_dot_product_attention` path, which torch's
dynamo exporter turns into one standard opset-23 `Attention` node per layer. Each family's
`fused_attention` (model/families.py) then says what becomes of it: for BERT-style layers (BERT,
RoBERTa, XLM-RoBERTa, CamemBERT, DistilBERT) `export.fusion` folds each, with its Q/K/V
projections, into ONNX Runtime's `com.microsoft.Attention` (faster on CPU, also implemented by
CUDA; measured in docs/benchmarks.md), and ONNX Runtime adds SkipLayerNormalization and BiasGelu
fusions at load. For the causal decoders, `export.causal_attention` keeps the standard op and lets
its own causal masking replace the explicit mask. Neither ever materialises the (B, nh, T, T)
probabilities.
The maps graph exports the explicit path (MatMul, Softmax, MatMul) and returns every layer's
softmax output: exact, and supported by every provider.

Only BERT takes `token_type_ids`: each graph's inputs (the family's `config.inputs`, from
service/padding.py's INPUT_NAMES) are listed in its `GraphSpec`.
"""

from __future__ import annotations

import collections
import logging
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from attnserve.export.causal_attention import make_attention_causal
from attnserve.export.finite import NonFiniteOutputError, check_finite, first_non_finite
from attnserve.export.fusion import fuse_attention
from attnserve.export.int8_gate import GATE_TEXTS
from attnserve.export.onnx_files import is_large, save_graph
from attnserve.export.progress import stage
from attnserve.export.quantize import build_int8
from attnserve.export.vector_check import check_quality, pooled_embeddings
from attnserve.model.embedding_model import AttentionImpl, EmbeddingModel
from attnserve.model.families import ARCHITECTURES
from attnserve.model.tokenization import ReferenceTokenizer
from attnserve.service.artifact import ExecutionProvider, GraphPurpose, GraphSpec, Precision
from attnserve.service.corpus import held_out_corpus, varied_corpus
from attnserve.service.padding import INPUT_NAMES
from attnserve.service.sessions import open_session

log = logging.getLogger(__name__)
OPSET = 23
DECODER_INPUTS = INPUT_NAMES[:2]  # a decoder has no segments
FAST_OUTPUTS = ("token_embeddings", "pooled")
MAPS_OUTPUTS = (*FAST_OUTPUTS, "attentions")
CPU_AND_CUDA: tuple[ExecutionProvider, ...] = ("CUDAExecutionProvider", "CPUExecutionProvider")

PARITY_TEXTS = [
    "hello",
    "The encoder reads every token of the sentence at once.",
    "Prices rose 3.5% in Q3, to $1,234.56 per unit -- or did they?!",
    "Café naïve façade, déjà vu in Zürich; 東京; Привет; 🚀",
    " ".join(["Attention weighs every token against every other token."] * 12),
]


def graph_inputs(model: EmbeddingModel) -> tuple[str, ...]:
    return model.config.inputs


class FastGraph(nn.Module):
    """Token embeddings and pooled vectors (before normalisation, which the service applies).

    Exported through `scaled_dot_product_attention` by default, which the exporter turns into
    one opset-23 `Attention` per layer; `explicit` gives the plain MatMul/Softmax/MatMul export
    (the benchmarks' baseline)."""

    def __init__(self, model: EmbeddingModel, attention_impl: AttentionImpl = "sdpa") -> None:
        super().__init__()
        self.model = model
        self.attention_impl: AttentionImpl = attention_impl

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        out = self.model(
            input_ids,
            attention_mask,
            token_type_ids,
            normalize=False,
            attention_impl=self.attention_impl,
        )
        return out.last_hidden_state, out.pooled


class MapsGraph(nn.Module):
    """Also every layer's attention probabilities, stacked: (layers, B, nh, T, T)."""

    def __init__(self, model: EmbeddingModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        out = self.model(
            input_ids,
            attention_mask,
            token_type_ids,
            output_attentions=True,
            normalize=False,
            attention_impl="explicit",  # the only path that materialises the probabilities
        )
        return out.last_hidden_state, out.pooled, torch.stack(out.attentions)


def export_graph(
    module: nn.Module, outputs: tuple[str, ...], path: Path, inputs: tuple[str, ...] = INPUT_NAMES
) -> None:
    """`inputs` are the leading parameters of the module's forward, in order."""
    # Distinct tensors: the exporter treats one tensor passed twice as one graph input.
    example = (
        torch.full((2, 8), 3, dtype=torch.long),
        torch.ones(2, 8, dtype=torch.long),
        torch.zeros(2, 8, dtype=torch.long),
    )[: len(inputs)]
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    axes = tuple({0: batch, 1: seq} for _ in inputs)
    module.eval()
    # Traced with PyTorch's reference (math) kernel: the exporter records one
    # scaled_dot_product_attention either way, but a CPU kernel's output strides (for a per-head
    # (B, nh, T, T) bias, MPNet's) otherwise leak into the trace as a view its checks reject.
    with sdpa_kernel(SDPBackend.MATH):
        program = torch.onnx.export(
            module,
            example,
            dynamo=True,
            opset_version=OPSET,
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_shapes=axes,
            verbose=False,
        )
    assert program is not None
    weights = sum(p.numel() * p.element_size() for p in module.parameters())
    program.save(str(path), external_data=is_large(weights))


def fuse_in_place(path: Path, num_heads: int, mask_as_bias: bool = False) -> int:
    """Fuse every attention of the graph at `path`; returns how many were fused."""
    model = onnx.load(str(path))
    fused = fuse_attention(model, num_heads, mask_as_bias)
    if fused == 0:
        raise RuntimeError(f"{path}: no attention to fuse; did the exporter change?")
    save_graph(model, path)
    return fused


def make_causal_in_place(path: Path, num_layers: int) -> int:
    model = onnx.load(str(path))
    rewritten = make_attention_causal(model)
    if rewritten != num_layers:
        raise RuntimeError(f"{path}: {rewritten} attention nodes for {num_layers} layers")
    save_graph(model, path)
    return rewritten


def specialise_attention(model: EmbeddingModel, path: Path) -> str:
    """The fast graph's attention in the form its family fuses to (model/families.py); says what
    it did."""
    form = ARCHITECTURES[model.config.family].fused_attention
    if form == "causal":
        count = make_causal_in_place(path, model.config.num_layers)
        return f"{count} x causal Attention (opset 23)"
    if form == "packed_qkv":
        count = fuse_in_place(path, model.config.num_heads)
        return f"{count} x com.microsoft.Attention"
    if form == "packed_qkv_bias":
        count = fuse_in_place(path, model.config.num_heads, mask_as_bias=True)
        return f"{count} x com.microsoft.Attention (mask and bias as attention_bias)"
    return "standard Attention (opset 23), kept as exported"


def op_counts(path: Path) -> dict[str, int]:
    graph = onnx.load(str(path), load_external_data=False).graph
    counts = collections.Counter(
        f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        for node in graph.node
    )
    return dict(sorted(counts.items()))


def measure_parity(
    model: EmbeddingModel, tokenizer: ReferenceTokenizer, path: Path, maps: bool
) -> dict[str, float]:
    """Compare the graph with the PyTorch model on a padded batch of mixed lengths."""
    batch = tokenizer(PARITY_TEXTS)
    feeds = {name: batch[name].numpy() for name in graph_inputs(model)}
    session = open_session(path)
    outputs = session.run(None, feeds)
    names = [output.name for output in session.get_outputs()]
    found = first_non_finite(outputs, names, batch["attention_mask"].numpy())
    if found is not None:
        raise NonFiniteOutputError(
            f"{path.name}: output {found[0]!r} holds NaN or Inf for parity text {found[1]}; "
            "an artifact that answers NaN is refused (check the checkpoint's weights)"
        )
    with torch.no_grad():
        reference = model(**batch, output_attentions=maps, normalize=False)
    real = batch["attention_mask"].numpy().astype(bool)
    tokens_diff = np.abs(outputs[0] - reference.last_hidden_state.numpy())[real].max()
    ours, theirs = outputs[1], reference.pooled.numpy()
    cosines = (ours * theirs).sum(-1) / (
        np.linalg.norm(ours, axis=-1) * np.linalg.norm(theirs, axis=-1)
    )
    parity = {
        "max_abs_token_embeddings": float(tokens_diff),
        "min_cosine_pooled": float(cosines.min()),
    }
    if maps:
        expected = torch.stack(reference.attentions).numpy()  # (L, B, nh, T, T)
        query_is_real = np.broadcast_to(real[None, :, None, :, None], expected.shape)
        diff = np.abs(outputs[2] - expected)[query_is_real]  # padded query rows mean nothing
        parity["max_abs_attentions"] = float(diff.max())
        if model.config.causal:  # every row, padded or not: nothing may look ahead
            future = np.triu(np.ones(expected.shape[-2:], dtype=bool), k=1)
            parity["max_attention_above_diagonal"] = float(outputs[2][..., future].max())
    return parity


def build_graphs(
    model: EmbeddingModel,
    tokenizer_path: Path,
    max_tokens: int,
    out_dir: Path,
    *,
    int8: bool = True,
    fp16: bool = True,
) -> list[GraphSpec]:
    tokenizer = ReferenceTokenizer(tokenizer_path, max_tokens, model.config.pad_token_id)
    built: list[GraphSpec] = []
    plan: tuple[tuple[GraphPurpose, nn.Module, tuple[str, ...]], ...] = (
        ("fast", FastGraph(model), FAST_OUTPUTS),
        ("maps", MapsGraph(model), MAPS_OUTPUTS),
    )
    inputs = graph_inputs(model)
    kind = "decoder" if model.config.causal else "encoder"
    reference: np.ndarray | None = None  # the fast graph's pooled vectors on the gate's texts
    for purpose, module, outputs in plan:
        file = f"{kind}.{purpose}.fp32.onnx"
        with stage("export", file) as step:
            export_graph(module, outputs, out_dir / file, inputs)
            step.outcome = f"torch -> ONNX, opset {OPSET}"
        if purpose == "fast":
            with stage("fuse", file) as step:
                step.outcome = specialise_attention(model, out_dir / file)
        with stage("verify", file) as step:
            parity = measure_parity(model, tokenizer, out_dir / file, purpose == "maps")
            step.outcome = describe_parity(parity)
        if purpose == "fast" and int8:
            # No NaN/Inf on the gate's 1000 texts before int8 derives from it; the same pass is
            # the gate's fp32 reference. (Every graph is also checked on the parity texts, and
            # fp16 on its own texts: without int8 this pass would be the 110M-parameter
            # MPNet's longest stage, for a graph the parity check has already run.)
            with stage("finite", file) as step:
                gate_texts = held_out_corpus(GATE_TEXTS)
                reference = check_finite(out_dir / file, tokenizer, gate_texts)
                step.outcome = f"no NaN or Inf on {len(gate_texts)} texts (the int8 gate's)"
        built.append(
            GraphSpec(
                file=file,
                purpose=purpose,
                precision="fp32",
                providers=CPU_AND_CUDA,
                opset=OPSET,
                op_counts=op_counts(out_dir / file),
                inputs=inputs,
                outputs=outputs,
                graph_optimization_level="ORT_ENABLE_ALL",
                parity=parity,
            )
        )
    fast_fp32 = built[0]
    if int8:
        built += build_int8_graph(fast_fp32, out_dir, tokenizer, reference)
    if fp16:
        built.append(build_fp16_graph(fast_fp32, out_dir, tokenizer))
    return built


def describe_parity(parity: dict[str, float]) -> str:
    """The verify stage's outcome in words: the graph against the PyTorch model."""
    said = (
        f"vs PyTorch: max |diff| {parity['max_abs_token_embeddings']:.1e}, "
        f"min cosine {parity['min_cosine_pooled']:.6f}"
    )
    if "max_abs_attentions" in parity:
        said += f", attention max |diff| {parity['max_abs_attentions']:.1e}"
    return said


def variant_of(
    base: GraphSpec,
    path: Path,
    precision: Precision,
    providers: tuple[ExecutionProvider, ...],
    parity: dict[str, float],
) -> GraphSpec:
    """The spec of a graph derived from `base` (same purpose, inputs and outputs) at `path`."""
    return base.model_copy(
        update={
            "file": path.name,
            "op_counts": op_counts(path),
            "precision": precision,
            "providers": providers,
            "parity": parity,
        }
    )


def build_int8_graph(
    fast_fp32: GraphSpec,
    out_dir: Path,
    tokenizer: ReferenceTokenizer,
    reference: np.ndarray | None = None,
) -> list[GraphSpec]:
    """`reference`: the fp32 graph's pooled vectors on the gate's texts, when the finite check
    has just computed them."""
    fp32_path = out_dir / fast_fp32.file
    path = out_dir / fast_fp32.file.replace(".fp32.", ".int8.")
    result = build_int8(fp32_path, path, tokenizer, fast_fp32.inputs, reference=reference)
    if result.name is None:
        log.warning("int8: no candidate passed the quality gate; no int8 graph written")
        return []
    spec = variant_of(
        fast_fp32,
        path,
        precision="int8",
        providers=("CPUExecutionProvider",),
        parity=result.parity(),
    )
    return [spec.model_copy(update={"int8": result.spec()})]


def rotary_angle_nodes(model: onnx.ModelProto) -> list[str]:
    """Every node that computes the rotary cos/sin tables: position x frequency needs fp32 (in
    fp16, position 3000 is already rounded to a multiple of 2)."""
    producer = {out: node for node in model.graph.node for out in node.output}
    stack = [n for n in model.graph.node if n.op_type in ("Cos", "Sin")]
    names: set[str] = set()
    while stack:
        node = stack.pop()
        if node.name in names:
            continue
        names.add(node.name)
        stack.extend(producer[name] for name in node.input if name in producer)
    return sorted(names)


def convert_to_fp16(fp32_path: Path, path: Path) -> None:
    """Half-precision weights and matmuls for CUDA; inputs, outputs and norms stay fp32 (a
    decoder's residual stream can exceed fp16's range once squared for RMSNorm), and so do the
    rotary angles. The one conversion for embedders' and cross-encoders' graphs."""
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = onnx.load(str(fp32_path))
    half = convert_float_to_float16(
        model,
        keep_io_types=True,
        op_block_list=["LayerNormalization", "RMSNormalization"],
        node_block_list=rotary_angle_nodes(model),
    )
    OnnxModel(half).topological_sort()  # the converter appends the casts it inserts
    save_graph(half, path)


def build_fp16_graph(
    fast_fp32: GraphSpec, out_dir: Path, tokenizer: ReferenceTokenizer
) -> GraphSpec:
    """The fp16 CUDA graph, checked on CPU against fp32 (no NaN/Inf, pooled cosines)."""
    fp32_path = out_dir / fast_fp32.file
    path = out_dir / fast_fp32.file.replace(".fp32.", ".fp16.")
    with stage("fp16", path.name) as step:
        convert_to_fp16(fp32_path, path)
        texts = varied_corpus(64)
        check_finite(path, tokenizer, texts)  # fp16 overflows where fp32 does not
        report = check_quality(
            pooled_embeddings(fp32_path, tokenizer, texts),
            pooled_embeddings(path, tokenizer, texts),
        )
        step.outcome = (
            f"CPU cosine to fp32: mean {report.mean_cosine:.6f}, min {report.min_cosine:.6f} "
            f"over {report.n_texts} texts"
        )
    parity = {
        "cpu_mean_cosine_to_fp32": report.mean_cosine,
        "cpu_min_cosine_to_fp32": report.min_cosine,
        "n_texts": float(report.n_texts),
    }
    return variant_of(
        fast_fp32, path, precision="fp16", providers=("CUDAExecutionProvider",), parity=parity
    )
