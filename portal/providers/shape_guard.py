"""The guard around every parse method: a vendor reply of an unexpected shape becomes
`InvalidResponse`, never a KeyError or TypeError, and a parsed reply whose normalized fields
have the wrong types is refused before it reaches the router and the meter.

`Adapter` and `StreamParser` apply it to their subclasses' parse methods (third-party ones
included), so no adapter has to remember it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from portal.contracts.responses import FINISH_REASONS, EmbedResponse, Response, Usage
from portal.errors import InvalidResponse, ProviderError
from portal.secret import redact, scrub

__all__ = ["SHAPE_ERRORS", "guard_shape"]

#: what parsing code raises when a reply is not the shape it expects: missing keys, wrong
#: types, bad numbers, nesting too deep for the JSON reader
SHAPE_ERRORS = (
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    ValueError,
    OverflowError,
    RecursionError,
)


def guard_shape(fn: Callable[..., Any], what: str) -> Callable[..., Any]:
    """Wrap a parse method (``parse_chat``, ``parse_embed``, a stream parser's ``feed`` and
    ``finish``) so that a vendor reply of an unexpected shape raises `InvalidResponse`, never
    a KeyError or TypeError, and a parsed reply whose normalized fields have the wrong types
    is refused rather than handed to the router and the meter. Applied once, here, to every
    adapter (third-party ones included) by ``__init_subclass__``."""
    if getattr(fn, "__portal_guarded__", False):
        return fn

    @functools.wraps(fn)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(self, *args, **kwargs)
        except ProviderError:
            raise
        except SHAPE_ERRORS as exc:
            provider, model = _who(self, args)
            scrub(exc)  # chained below: its text is printed with the traceback
            detail = str(exc)
            detail = detail if len(detail) <= 160 else detail[:157] + "..."
            raise InvalidResponse(
                f"{what}: the reply does not have the documented shape "
                f"({type(exc).__name__}: {detail})",
                provider=provider,
                model=model,
            ) from exc
        problem = _bad_fields(result)
        if problem is not None:
            provider, model = _who(self, args)
            raise InvalidResponse(
                f"{what}: the reply does not have the documented shape ({problem})",
                provider=provider,
                model=model,
            )
        request_id = getattr(result, "request_id", None)
        if request_id is not None:  # a header the vendor echoes the key in reaches the ledger
            result.request_id = redact(request_id)
        return result

    guarded.__portal_guarded__ = True  # type: ignore[attr-defined]
    return guarded


def _who(obj: Any, args: tuple[Any, ...]) -> tuple[str | None, str | None]:
    """(provider, model) a refused reply is reported under: an adapter's name and the model
    it was asked for, or a stream parser's adapter and model."""
    from portal.providers.adapter import Adapter  # the adapter module applies this guard

    if isinstance(obj, Adapter):
        model = args[1] if len(args) > 1 and isinstance(args[1], str) else None
        return obj.name, model
    adapter = getattr(obj, "adapter", None)
    model = getattr(obj, "model", None)
    return getattr(adapter, "name", None), model if isinstance(model, str) else None


def _usage_ok(u: Any) -> bool:
    return (
        u.__class__ is Usage
        and u.input_tokens.__class__ is int
        and u.output_tokens.__class__ is int
        and u.cached_input_tokens.__class__ is int
        and u.cache_write_tokens.__class__ is int
        and u.reasoning_tokens.__class__ is int
    )


def _bad_usage(usage: Any) -> str | None:
    if not isinstance(usage, Usage):
        return f"usage is {type(usage).__name__}"
    for name in (
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    ):
        value = getattr(usage, name)
        if type(value) is not int:
            return f"usage.{name} is {type(value).__name__}, not an integer"
    return None


def _bad_fields(result: Any) -> str | None:
    """What is wrong with a parsed result's normalized fields, or None."""
    if isinstance(result, list):  # stream events
        for event in result:
            if event.usage is not None and (problem := _bad_usage(event.usage)):
                return problem
            if not isinstance(event.text, str):
                return f"stream text is {type(event.text).__name__}"
        return None
    if isinstance(result, EmbedResponse):
        for vector in result.vectors:
            if not isinstance(vector, list) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in vector
            ):
                return "an embedding is not a list of numbers"
        return _bad_usage(result.usage)
    if not isinstance(result, Response):
        return None
    if (  # the happy path in one expression: a plain reply with integer usage
        result.__class__ is Response
        and result.text.__class__ is str
        and (result.text or result.raw_finish_reason is not None)
        and result.finish_reason in FINISH_REASONS
        and (result.raw_finish_reason is None or result.raw_finish_reason.__class__ is str)
        and not result.tool_calls
        and _usage_ok(result.usage)
    ):
        return None
    if not isinstance(result.text, str):
        return f"text is {type(result.text).__name__}"
    if (
        not result.text
        and not result.tool_calls
        and result.raw_finish_reason is None
        and isinstance(result.usage, Usage)
        and not result.usage.total_tokens
        and not result.provider_details.get("unknown_content")
    ):
        return "an empty reply: no text, no tool call, no stop reason and no usage"
    if result.finish_reason not in FINISH_REASONS:
        return f"finish reason {result.finish_reason!r}"
    if result.raw_finish_reason is not None and not isinstance(result.raw_finish_reason, str):
        return f"finish reason is {type(result.raw_finish_reason).__name__}, not a string"
    for call in result.tool_calls:
        if not isinstance(call.name, str) or not isinstance(call.id, str):
            return "a tool call's name or id is not a string"
        if not isinstance(call.arguments, dict):
            return f"tool call {call.name!r}: arguments are not a JSON object"
    return _bad_usage(result.usage)
