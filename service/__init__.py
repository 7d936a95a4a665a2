"""The serving side: artifact loading, ONNX Runtime inference, batching, the gRPC API, metrics.

Nothing here imports torch, `model/` or `export/`: the serving install and image stay slim.
"""
