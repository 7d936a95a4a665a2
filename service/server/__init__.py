"""The gRPC server: settings, engine, batcher, request pipeline, servicer, lifecycle."""
