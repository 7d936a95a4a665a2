"""The serving side: three programs over a small shared floor.

- `server/`: ONNX Runtime inference, batching, the gRPC API, metrics, lifecycle.
- `client/`: the typed client, the `embed` and `attend` commands, heatmaps.
- `loadtest/`: closed- and open-loop load generation and its reports.
- the floor (`artifact`, `wire`, `corpus`, `sessions`, `padding`, `cli`): the artifact
  contract, the tensor codec, text mixes, ONNX Runtime sessions, padded batches and the
  `attnserve` command; it imports nothing of ours but the stubs. `model/` and `export/` use it
  too (docs/architecture.md says why it lives here).

Nothing here imports torch, `attnserve.model` or `attnserve.export`.
"""
