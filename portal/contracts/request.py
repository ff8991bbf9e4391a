"""What an adapter is asked to send: a vendor-neutral chat or embedding request."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Required, TypedDict

from portal.contracts.messages import Message
from portal.contracts.output import OutputSpec
from portal.contracts.tools import ToolChoice, ToolSpec
from portal.errors import ContractError

__all__ = ["ChatArgs", "ChatRequest", "EmbedArgs", "EmbedRequest", "SamplingParams"]


class SamplingParams(TypedDict, total=False):
    """The sampling keywords of ``chat`` / ``stream`` (``**params: Unpack[SamplingParams]``):
    type checkers and IDEs see them; a misspelt one is still a `ContractError` naming the
    allowed ones at run time."""

    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    stop: list[str] | None
    seed: int | None
    provider_options: dict[str, dict[str, Any]] | None


class ChatArgs(SamplingParams, total=False):
    """The keyword arguments of ``chat`` and ``stream`` on `Client` and `AsyncClient`
    (``**kwargs: Unpack[ChatArgs]``), written once for the four methods. ``output=`` is a
    separate keyword so a pydantic model makes the response generic in it.

    - ``feature``: the ``[features.NAME]`` that picks route, contract, SLA, budget, ledger tag;
      or ``model``: a ``"provider:model"`` id, for a call without a feature.
    - ``messages``: the conversation (`Message`s or ``{"role", "content"}`` dicts); or
      ``input``: the values of the feature contract's prompt templates.
    - ``tools``: python functions or `ToolSpec`s; ``tool_choice``: auto, none, required or a
      tool's name. ``run_tools`` (default: when the tools have functions) runs the tool loop,
      up to ``max_steps`` model turns, each tool under ``tool_timeout_s``.
    - ``key``: the sticky canary / weighted routing key (a user id); ``tenant``: the budget's
      tenant; ``tags``: ledger tags (default: the feature's).
    - ``timeout_s``: the whole call's deadline (default: the feature's ``timeout_s``).
    - ``safety``: guards for this call (a list, a `GuardChain`, or False for none);
      ``retriever`` / ``rag``: RAG for this call (``rag=False`` turns the feature's off).
    - sampling: ``max_tokens``, ``temperature``, ``top_p``, ``stop``, ``seed``,
      ``provider_options`` (`SamplingParams`).
    """

    feature: str | None
    model: str | None
    messages: Iterable[Message | Mapping[str, Any]] | None
    input: Mapping[str, Any] | None
    tools: Sequence[Any] | None
    tool_choice: ToolChoice | None
    key: str | None
    tenant: str | None
    tags: Mapping[str, str] | None
    timeout_s: float | None
    run_tools: bool | None
    max_steps: int
    tool_timeout_s: float | None
    safety: Any
    retriever: Any
    rag: Any


class EmbedArgs(TypedDict, total=False):
    """The keyword arguments of ``embed`` on both clients: ``inputs`` (the texts, in order),
    ``feature`` or ``model`` (as for chat), ``key``, ``dimensions`` and ``input_type`` (for
    vendors that take them) and ``timeout_s`` (the whole call's deadline)."""

    inputs: Required[Sequence[str]]
    feature: str | None
    model: str | None
    key: str | None
    dimensions: int | None
    input_type: str | None
    timeout_s: float | None


@dataclass(slots=True)
class ChatRequest:
    """A chat call after coercion. Adapters translate it; nothing here is vendor-specific
    except ``provider_options``, namespaced by provider kind (``{"anthropic": {...}}``)."""

    messages: list[Message]
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    output: OutputSpec | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    stream: bool = False
    provider_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Sampling parameters are checked here, once, so a typo fails before any vendor is
        called (not as a vendor 400, or not at all on a lenient vendor)."""
        _number("temperature", self.temperature, 0.0, 2.0)
        _number("top_p", self.top_p, 0.0, 1.0)
        if self.max_tokens is not None and (
            not isinstance(self.max_tokens, int)
            or isinstance(self.max_tokens, bool)
            or self.max_tokens < 1
        ):
            raise ContractError(f"max_tokens: expected a positive integer, got {self.max_tokens!r}")
        if self.seed is not None and (
            not isinstance(self.seed, int) or isinstance(self.seed, bool)
        ):
            raise ContractError(f"seed: expected an integer, got {self.seed!r}")
        if self.stop is not None and (
            not isinstance(self.stop, list) or not all(isinstance(s, str) for s in self.stop)
        ):
            raise ContractError(f"stop: expected a list of strings, got {self.stop!r}")

    def check_tool_choice(self) -> None:
        """``tool_choice`` must name a way to call the tools given (the clients check it; an
        adapter refuses a name it cannot send as well)."""
        choice = self.tool_choice
        if choice is None or choice in ("auto", "none"):
            return
        names = [t.name for t in self.tools]
        names += [t.original_name for t in self.tools if t.original_name]
        if not isinstance(choice, str):
            raise ContractError(
                f"tool_choice: expected 'auto', 'none', 'required' or a tool name, got {choice!r}"
            )
        if not names:
            raise ContractError(f"tool_choice={choice!r} needs tools=; pass the tools to call")
        if choice != "required" and choice not in names:
            raise ContractError(
                f"tool_choice: {choice!r} is not 'auto', 'none', 'required' or one of the "
                f"tools ({', '.join(names)})"
            )

    def with_messages(self, messages: list[Message]) -> ChatRequest:
        return replace(self, messages=messages)

    def options_for(self, kind: str) -> dict[str, Any]:
        """Vendor knobs for one provider kind, merged verbatim into its request body."""
        return self.provider_options.get(kind, {})


def _number(name: str, value: Any, low: float, high: float) -> None:
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise ContractError(f"{name}: expected a number from {low:g} to {high:g}, got {value!r}")


@dataclass(slots=True)
class EmbedRequest:
    inputs: list[str]
    dimensions: int | None = None
    input_type: str | None = None  # "query" | "document" for vendors that distinguish them
    provider_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def options_for(self, kind: str) -> dict[str, Any]:
        return self.provider_options.get(kind, {})
