"""The client side: a typed gRPC client, the embed/attend commands and heatmaps."""
