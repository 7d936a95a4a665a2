"""The served model the call in progress was routed to, and the task it asked of it: the
`model` and `task` labels of its metrics.

The call's envelope (`calls.py`) is opened before the adapter knows the model and closed after
it, so the call carries a `Route` in a context variable: the envelope opens a fresh one per call,
the registry records the model it chooses (`Registry.route`, `Registry.find`), the served model
the task it hands out (`ServedModel.task`, refined by a task that answers several operations:
`score` -> rerank or classify; `ServedModel.tokenize` -> tokenize), and the envelope reads the
labels when the call ends. A `Route` is one mutable record shared by reference, so the requests
of a stream (each in its own asyncio task, whose context is a copy) record into their stream's
route: a stream whose requests all reached one model and one task is counted under them.

A label is "" when nothing, or more than one thing, was recorded: an unknown name, a server-wide
call (health, model lists, OIP's server calls), a stream mixing models. A call that describes a
model without running a task (Info, OIP's ModelMetadata) has a model and no task. The labels
only ever hold served names and the tasks' fixed few names.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class Route:
    models: set[str] = field(default_factory=set)
    tasks: set[str] = field(default_factory=set)

    @property
    def labels(self) -> tuple[str, str]:
        """(model, task): each the one recorded, or "" for none or several."""
        return only(self.models), only(self.tasks)


def only(values: set[str]) -> str:
    return next(iter(values)) if len(values) == 1 else ""


current: ContextVar[Route] = ContextVar("route")


def open_route() -> Route:
    """A new call's route, current from here on in this context (and the tasks it starts)."""
    route = Route()
    current.set(route)
    return route


def route_model(name: str) -> None:
    route = current.get(None)
    if route is not None:
        route.models.add(name)


def route_task(name: str, refines: str | None = None) -> None:
    """Record the task the call asked for; `refines`: the broader name it replaces (a task
    that answers several operations names the one it ran)."""
    route = current.get(None)
    if route is not None:
        route.tasks.discard(refines or "")
        route.tasks.add(name)
