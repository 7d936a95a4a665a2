"""Triton's own client asking attnserve's OIP endpoint to rerank (run with .venv-triton's Python
by test_cross_encoder_service.py; imports nothing of attnserve):

    .venv-triton/bin/python oip_rerank_with_tritonclient.py HOST:PORT MODEL QUERY DOC [DOC ...]

Prints one JSON document: the model's metadata inputs/outputs and the scores, in document order.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import tritonclient.grpc as triton


def main() -> None:
    target, model, query, *documents = sys.argv[1:]
    client = triton.InferenceServerClient(target)
    metadata = client.get_model_metadata(model, as_json=True)
    inputs = [
        triton.InferInput("query", [1], "BYTES"),
        triton.InferInput("documents", [len(documents)], "BYTES"),
    ]
    inputs[0].set_data_from_numpy(np.array([query.encode()], dtype=np.object_))
    inputs[1].set_data_from_numpy(np.array([d.encode() for d in documents], dtype=np.object_))
    result = client.infer(model, inputs, outputs=[triton.InferRequestedOutput("scores")])
    raw = client.infer(model, inputs, parameters={"raw_scores": True})
    print(
        json.dumps(
            {
                "inputs": [(i["name"], i["datatype"]) for i in metadata["inputs"]],
                "outputs": [(o["name"], o["datatype"]) for o in metadata["outputs"]],
                "scores": result.as_numpy("scores").tolist(),
                "logits": raw.as_numpy("scores").tolist(),
            }
        )
    )


if __name__ == "__main__":
    main()
