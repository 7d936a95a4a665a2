"""The serving side: three programs over a small shared floor.

- `server/`: ONNX Runtime inference, batching, the gRPC API, metrics, lifecycle.
- `client/`: the typed client, the `embed` and `attend` commands, heatmaps.
- `loadtest/`: closed- and open-loop load generation and its reports.
- the floor (`artifact`, `wire`, `corpus`, `cli`): the artifact contract, the tensor codec,
  text mixes and the `attnserve` command; it imports nothing of ours but the stubs.

Nothing here imports torch, `attnserve.model` or `attnserve.export`.
"""
