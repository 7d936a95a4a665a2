"""Each graph gets exactly the inputs its manifest lists: a decoder has no token_type_ids."""

from __future__ import annotations

import numpy as np
import pytest

from attnserve.service.artifact import GraphSpec
from attnserve.service.padding import pad
from attnserve.service.server.engine import EngineError, check_inputs


def spec(inputs: tuple[str, ...]) -> GraphSpec:
    return GraphSpec(
        file="graph.onnx",
        purpose="fast",
        precision="fp32",
        providers=("CPUExecutionProvider",),
        opset=23,
        op_counts={},
        inputs=inputs,
        outputs=("token_embeddings", "pooled"),
        graph_optimization_level="ORT_ENABLE_ALL",
        parity={},
    )


def test_a_batch_feeds_the_inputs_asked_for_in_their_order() -> None:
    batch = pad([[5, 6, 7], [8]], None, pad_id=0)
    decoder = batch.feeds(("input_ids", "attention_mask"))
    assert list(decoder) == ["input_ids", "attention_mask"]
    np.testing.assert_array_equal(decoder["input_ids"], [[5, 6, 7], [8, 0, 0]])
    np.testing.assert_array_equal(decoder["attention_mask"], [[1, 1, 1], [1, 0, 0]])
    assert list(batch.feeds()) == ["input_ids", "attention_mask", "token_type_ids"]


def test_the_engine_refuses_a_graph_with_an_input_it_cannot_feed() -> None:
    check_inputs([spec(("input_ids", "attention_mask")), spec(("input_ids",))])
    with pytest.raises(EngineError, match=r"graph\.onnx takes input\(s\) \['position_ids'\]"):
        check_inputs([spec(("input_ids", "attention_mask", "position_ids"))])
