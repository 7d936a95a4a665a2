"""The server: settings, engine, batcher, request pipeline, the tasks (`tasks/`), the protocols
(`v1/`, `oip/`, `http/`), the composition root and lifecycle (`app.py`)."""
