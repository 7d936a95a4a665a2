"""Served models and the registry the protocol adapters ask by name: the decisions every
adapter shares, made once.

A served model is one artifact made servable: its manifest, engine, tokenizer, batcher (with
its cost model), limits and pipeline, under the name the APIs call it by, and the tasks it
offers over them (`embed` and `late_chunking` for an embedder, `score` for a cross-encoder). The
registry holds every served model (one per artifact) and answers the adapters' questions: which
model a request means (`route`: the one chooser, where no name means the default; `find` where
an API requires a name) and is this name served (`serves`). An adapter then asks the model for
the task it speaks (`model.task(EmbedTask)`): a model that does not offer it refuses with a
clear status. Both label the call in progress (`routed.py`): the registry with the model it
chose, the model with the task it handed out, so no adapter or task can forget either; a new
task or a second model is a new entry here, never a change to the adapters.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol, TypeVar

from attnserve.service.artifact import Manifest
from attnserve.service.server.batcher import Batcher
from attnserve.service.server.engine import Engine
from attnserve.service.server.errors import Code, ServiceError, invalid
from attnserve.service.server.limits import Limits
from attnserve.service.server.options import TokenizeOptions
from attnserve.service.server.pipeline import Pipeline, Tokenized
from attnserve.service.server.routed import route_model, route_task
from attnserve.service.server.tokenizer import TextTokenizer


class Task(Protocol):
    """One operation a served model offers over its pipeline (`EmbedTask`, ...)."""

    name: ClassVar[str]


T = TypeVar("T", bound=Task)


@dataclass(eq=False)
class ServedModel:
    name: str  # what the OIP and OpenAI APIs call it
    aliases: tuple[str, ...]  # other names a request may use (the manifest's full name)
    directory: Path
    manifest: Manifest
    limits: Limits
    engine: Engine
    tokenizer: TextTokenizer
    batcher: Batcher
    pipeline: Pipeline
    tasks: tuple[Task, ...]
    by_name: dict[str, Task] = field(init=False, repr=False)
    ready: bool = field(default=False, init=False)  # warmed up, its batcher running
    rss_bytes: int = field(default=0, init=False)  # resident memory its loading and warm-up added

    def __post_init__(self) -> None:
        self.by_name = {task.name: task for task in self.tasks}

    @property
    def names(self) -> frozenset[str]:
        return frozenset((self.name, *self.aliases))

    @property
    def task_names(self) -> list[str]:
        """The tasks this model offers, by name (`embed`, ...): Info and /v1/models say them."""
        return sorted(self.by_name)

    def offers(self, task: type[Task]) -> bool:
        return isinstance(self.by_name.get(task.name), task)

    def task(self, task: type[T], operation: str | None = None) -> T:
        """This model's `task`, or INVALID_ARGUMENT naming the tasks it does offer; the call in
        progress is labelled with it (`operation`: what the call asked for, when a task answers
        several, as `score` answers rerank and classify).
        """
        asked = operation or task.name
        route_task(asked)
        offered = self.by_name.get(task.name)
        if not isinstance(offered, task):
            offers = ", ".join(sorted(self.by_name)) or "none"
            raise invalid(f"model {self.name!r} does not offer {asked} (it offers: {offers})")
        return offered

    async def tokenize(
        self, texts: list[str], options: TokenizeOptions, offsets: bool = True
    ) -> Tokenized:
        """The tokens the model would run `texts` as (any model: the `Tokenize` call), the call
        labelled with task "tokenize"."""
        route_task("tokenize")
        return await self.pipeline.tokenize(texts, options, offsets)

    def decode(self, ids: list[list[int]], skip_special_tokens: bool) -> list[str]:
        """Token ids back to text, one string per row, in this model's vocabulary (TEI's
        `/decode` and `Decode`), the call labelled with task "decode"."""
        route_task("decode")
        return [self.tokenizer.decode(row, skip_special_tokens) for row in ids]


class Registry:
    """The served models by name; the first is the default."""

    def __init__(self, models: Iterable[ServedModel]) -> None:
        self.models = list(models)
        if not self.models:
            raise ValueError("a registry needs at least one served model")
        self.default = self.models[0]
        self.by_name: dict[str, ServedModel] = {}
        for model in reversed(self.models):  # a name given twice belongs to the first model
            self.by_name.update(dict.fromkeys(model.names, model))

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(self.models)

    def serves(self, name: object) -> bool:
        return isinstance(name, str) and name in self.by_name

    @property
    def names(self) -> list[str]:
        """The served names, default first."""
        return [model.name for model in self.models]

    def find(self, name: object) -> ServedModel:
        """The model of this name (or alias), or NOT_FOUND naming those served: for the APIs
        where a request must name its model (OIP). The call in progress is labelled with the
        model found (`routed.py`: its metrics)."""
        model = self.by_name.get(name) if isinstance(name, str) else None
        if model is None:
            served = ", ".join(repr(model.name) for model in self.models)
            raise ServiceError(
                Code.NOT_FOUND, f"model {name!r} not found: this server serves {served}"
            )
        route_model(model.name)
        return model

    def route(self, name: object) -> ServedModel:
        """The one chooser: the model a request names, or the default when it names none (None,
        absent in JSON; "", unset in protobuf); labelled as `find` labels it."""
        return self.find(self.default.name if name is None or name == "" else name)

    def offering(self, task: type[Task]) -> list[ServedModel]:
        """The models that offer `task` (a task router's question: which models can rerank)."""
        return [model for model in self.models if model.offers(task)]

    @property
    def ready(self) -> bool:
        """The server is ready when every one of its models is."""
        return all(model.ready for model in self.models)
