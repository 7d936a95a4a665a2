"""What the tests share, one job per module: `servers` (a real server on loopback and waiting on
it), `decoders` (the test decoders' shapes and tokenizer), `deploy` (kustomize rendering and the
container rules), `certificates` (a CA and certificates for TLS tests), `cli` (running commands,
the tools CI installs, PNG checks), `texts` (the texts parity tests run over),
`encoder_families` (the BERT-like families' test checkpoints), `artifacts` (every artifact of
the run, exported once), `callers` (a server called as outside callers call it), `scrape` (its
/metrics read), `workers` (supervised `--workers` servers), `stand_in_servers` (bare servers of
known latency) and `reference` (the PyTorch reference, torch only). `ROOT` is the repository
root, named once here.

Nothing here but `reference` imports torch (`artifacts` only when it exports): the unit layer
and the serving tests run on the serving install.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
