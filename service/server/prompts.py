"""Named instruction prompts: which text goes before a request's inputs.

Instruction-tuned embedders (Qwen3-Embedding, e5, gte-Qwen2) are trained with a prefix on queries
("Instruct: ...\\nQuery:") and none on documents; their sentence-transformers config names them
(`prompts`) and may name a default. The manifest carries both; a request picks one by name, as
sentence-transformers' and text-embeddings-inference's `prompt_name` do. The prompt is prepended
to the text before tokenisation, so its tokens count in the token limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from attnserve.service.server.errors import invalid


@dataclass(frozen=True)
class Prompt:
    name: str  # "" = no prompt
    text: str


NO_PROMPT = Prompt("", "")


class PromptBook:
    def __init__(self, prompts: Mapping[str, str], default_name: str | None) -> None:
        self.prompts = dict(prompts)
        # The manifest guarantees the default is one of the prompts.
        self.default = (
            NO_PROMPT if default_name is None else Prompt(default_name, self.prompts[default_name])
        )

    def resolve(self, name: str | None) -> Prompt:
        """None: the model's default; "": no prompt; otherwise the prompt of that name."""
        if name is None:
            return self.default
        if name == "":
            return NO_PROMPT
        if name not in self.prompts:
            known = ", ".join(repr(n) for n in sorted(self.prompts)) or "none"
            raise invalid(f"prompt_name {name!r} is unknown; this model's prompts: {known}")
        return Prompt(name, self.prompts[name])
