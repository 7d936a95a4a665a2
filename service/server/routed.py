"""The served model the call in progress was routed to, and the task it asked of it: the
`model` and `task` labels of its metrics.

A context variable, because the call's envelope (`calls.py`) is opened before the adapter
knows the model and closed after it: the registry sets it when it finds a model
(`Registry.find`), the envelope reads it when the call ends. "" until then, so an unknown name,
a server-wide call or a stream (whose requests may each name another model) is counted under
"", and the label only ever holds served names. The task is set by the task itself when a call
reaches it (`embed`, `rerank`, `classify`: a fixed few), "" for a call that reached none
(Tokenize, Info, a refusal before the task, a stream).
"""

from __future__ import annotations

from contextvars import ContextVar

routed_model: ContextVar[str] = ContextVar("routed_model", default="")
routed_task: ContextVar[str] = ContextVar("routed_task", default="")
