"""attnserve: Transformer encoders served over gRPC, with fused attention and exact maps.

One import root over the repository's top-level folders (see docs/architecture.md):
`attnserve.model` (the PyTorch encoder), `attnserve.export` (ONNX artifacts), `attnserve.service`
(the server, the client and the load tester over a shared floor) and `attnserve.v1` (the
generated gRPC stubs of the public API).
"""
