"""Provider-neutral chat messages.

A message is one of four roles; its content is a string or a list of text and image parts.
OpenAI-style dicts are accepted wherever a message is, and coerced here once, so adapters
only ever see `Message`. Plain ``{"role": ..., "content": "..."}`` dicts take a fast path
that skips full validation: they are the common case on the hot path.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from portal.contracts.cache import CacheHint, check_cache
from portal.errors import ContractError

__all__ = [
    "ImagePart",
    "Message",
    "Part",
    "Role",
    "TextPart",
    "ToolCall",
    "assistant",
    "coerce_messages",
    "distinct_call_ids",
    "system",
    "tool_result",
    "user",
]

Role = Literal["system", "user", "assistant", "tool"]
_ROLES = ("system", "user", "assistant", "tool")


@dataclass(slots=True, frozen=True)
class TextPart:
    text: str
    type: Literal["text"] = "text"


@dataclass(slots=True, frozen=True)
class ImagePart:
    """An image given by URL, or inline as base64 ``data`` with its ``media_type``."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    type: Literal["image"] = "image"

    def __post_init__(self) -> None:
        if (self.url is None) == (self.data is None):
            raise ContractError("image part: give exactly one of url= or data= (base64)")
        if self.data is not None and not self.media_type:
            raise ContractError("image part: data= needs media_type=, e.g. 'image/png'")

    @property
    def data_url(self) -> str:
        """The image as a URL: the given one, or a ``data:`` URL for inline bytes."""
        if self.url is not None:
            return self.url
        return f"data:{self.media_type};base64,{self.data}"


Part = TextPart | ImagePart


@dataclass(slots=True)
class ToolCall:
    """A call the model asked for. ``arguments`` is always a dict (parsed from vendor JSON)."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    #: vendor data that must travel with the call when the conversation is replayed
    #: (e.g. Gemini's thought signatures); never shown to the model of another vendor
    provider_data: dict[str, Any] | None = field(default=None, compare=False)

    def arguments_json(self) -> str:
        return json.dumps(self.arguments, separators=(",", ":"), ensure_ascii=False)


@dataclass(slots=True)
class Message:
    """One turn of a conversation.

    - ``content``: a string, or a list of parts (text and images) for user messages.
    - ``tool_calls``: what an assistant turn asked to run.
    - ``tool_call_id`` / ``name``: for a ``tool`` turn, which call this is the result of.
    - ``cache``: the conversation up to and including this turn is a stable prefix worth
      caching (``True``, or a lifetime ``"5m"`` / ``"1h"`` where the vendor takes one).
    """

    role: Role
    content: str | list[Part] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    is_error: bool = False
    cache: CacheHint | None = None

    def __post_init__(self) -> None:
        if self.cache is not None:
            check_cache(self.cache, "message")

    @property
    def text(self) -> str:
        """The text of the message, image parts left out."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def parts(self) -> list[Part]:
        if self.content is None:
            return []
        if isinstance(self.content, str):
            return [TextPart(self.content)] if self.content else []
        return list(self.content)

    def to_dict(self) -> dict[str, Any]:
        """OpenAI-style dict, the lingua franca users already log and store. A tool call with
        vendor replay data keeps it under ``provider_data`` (`coerce_messages` reads it back);
        drop that key before handing the dict to another SDK."""
        out: dict[str, Any] = {"role": self.role}
        if isinstance(self.content, list):
            parts: list[dict[str, Any]] = []
            for p in self.content:
                if isinstance(p, TextPart):
                    parts.append({"type": "text", "text": p.text})
                else:
                    parts.append({"type": "image_url", "image_url": {"url": p.data_url}})
            out["content"] = parts
        else:
            out["content"] = self.content
        if self.tool_calls:
            out["tool_calls"] = [_call_dict(c) for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        if self.cache is not None:
            out["cache"] = self.cache
        return out


def _call_dict(call: ToolCall) -> dict[str, Any]:
    """A tool call in OpenAI's shape, plus ``provider_data`` when it has some (a vendor's
    signed reasoning or thought signature), so a stored conversation continues as it was."""
    out: dict[str, Any] = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json()},
    }
    if call.provider_data:
        out["provider_data"] = call.provider_data
    return out


def system(text: str, *, cache: CacheHint | None = None) -> Message:
    """A system prompt; ``cache=True`` (or ``"5m"`` / ``"1h"``) marks it as a stable prefix
    for the vendor's prompt cache."""
    return Message("system", text, cache=cache)


def user(content: str | Sequence[Part | str], *, cache: CacheHint | None = None) -> Message:
    """A user turn: a string, or a list mixing strings, `TextPart` and `ImagePart`."""
    if isinstance(content, str):
        return Message("user", content, cache=cache)
    parts: list[Part] = [TextPart(p) if isinstance(p, str) else p for p in content]
    return Message("user", parts, cache=cache)


def assistant(
    text: str | None = None,
    tool_calls: Sequence[ToolCall] | None = None,
    *,
    cache: CacheHint | None = None,
) -> Message:
    return Message("assistant", text, list(tool_calls) if tool_calls else None, cache=cache)


def tool_result(
    tool_call_id: str,
    result: Any,
    *,
    name: str | None = None,
    is_error: bool = False,
    cache: CacheHint | None = None,
) -> Message:
    """The result of one tool call; non-string results are sent as JSON."""
    if not isinstance(result, str):
        try:
            result = json.dumps(result, ensure_ascii=False, default=_json_default)
        except (TypeError, ValueError) as exc:
            raise ContractError(
                f"tool_result for call {tool_call_id!r}: result is not JSON-serializable ({exc}); "
                "return a str, dict, list, number or pydantic model"
            ) from exc
    return Message(
        "tool", result, tool_call_id=tool_call_id, name=name, is_error=is_error, cache=cache
    )


def distinct_call_ids(calls: list[ToolCall]) -> list[ToolCall]:
    """``calls`` with no id used twice: a repeat gets a new one (``<id>_2``, or ``call_2`` for
    a repeated empty id) that no call of the list has. Vendors pair each tool result with its
    call by id (OpenAI ``tool_call_id``, Anthropic ``tool_use_id``, whose ids are letters,
    digits, ``_`` and ``-``), so two calls under one id would get one result twice. The same
    list when every id is already distinct."""
    if len({c.id for c in calls}) == len(calls):
        return calls
    taken = {c.id for c in calls}
    seen: set[str] = set()
    out: list[ToolCall] = []
    for c in calls:
        if c.id in seen:
            base, n = c.id or "call", 2
            while f"{base}_{n}" in taken:
                n += 1
            c = replace(c, id=f"{base}_{n}")
            taken.add(c.id)
        seen.add(c.id)
        out.append(c)
    return out


def _json_default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# ---------------------------------------------------------------------------- coercion


def coerce_messages(messages: Iterable[Message | Mapping[str, Any]]) -> list[Message]:
    """Turn what the caller passed into `Message` objects, with errors that name the index."""
    if isinstance(messages, (str, bytes, Mapping)):
        raise ContractError(
            "messages: expected a list of messages, got "
            f"{type(messages).__name__}; wrap it, e.g. messages=[portal.user('hi')]"
        )
    out: list[Message] = []
    for i, m in enumerate(messages):
        if isinstance(m, Message):
            out.append(m)
        elif isinstance(m, Mapping):
            out.append(_from_dict(m, f"messages[{i}]"))
        else:
            raise ContractError(
                f"messages[{i}]: expected a portal.Message or a dict with 'role' and 'content', "
                f"got {type(m).__name__}"
            )
    if not out:
        raise ContractError("messages: at least one message is required")
    return out


_MESSAGE_KEYS = {"role", "content", "tool_calls", "tool_call_id", "name", "is_error", "cache"}


def _from_dict(d: Mapping[str, Any], where: str) -> Message:
    role = d.get("role")
    if role not in _ROLES:
        if role is None:
            raise ContractError(f"{where}.role: missing; expected one of {', '.join(_ROLES)}")
        raise ContractError(
            f"{where}.role: unknown role {role!r}; expected one of {', '.join(_ROLES)}"
        )
    content = d.get("content")
    # fast path: the plain text turn
    if len(d) == 2 and isinstance(content, str) and role != "tool":
        return Message(role, content)
    unknown = set(d) - _MESSAGE_KEYS
    if unknown:
        raise ContractError(
            f"{where}: unknown key(s) {', '.join(sorted(map(repr, unknown)))}; "
            f"allowed: {', '.join(sorted(_MESSAGE_KEYS))}"
        )
    parsed_content: str | list[Part] | None
    if content is None or isinstance(content, str):
        parsed_content = content
    elif isinstance(content, list):
        parsed_content = [_part(p, f"{where}.content[{j}]") for j, p in enumerate(content)]
    else:
        raise ContractError(
            f"{where}.content: expected a string or a list of parts, got {type(content).__name__}"
        )
    if role == "tool":
        if not d.get("tool_call_id"):
            raise ContractError(f"{where}.tool_call_id: required for a 'tool' message")
        if parsed_content is None:
            raise ContractError(f"{where}.content: a 'tool' message needs the tool's result")
    calls = d.get("tool_calls")
    tool_calls = None
    if calls:
        if role != "assistant":
            raise ContractError(f"{where}.tool_calls: only 'assistant' messages carry tool calls")
        tool_calls = [_tool_call(c, f"{where}.tool_calls[{j}]") for j, c in enumerate(calls)]
    elif role != "tool" and parsed_content is None:
        raise ContractError(f"{where}.content: missing; a {role!r} message needs content")
    return Message(
        role,
        parsed_content,
        tool_calls,
        d.get("tool_call_id"),
        d.get("name"),
        bool(d.get("is_error", False)),
        check_cache(d.get("cache"), where),
    )


def _part(p: Any, where: str) -> Part:
    if isinstance(p, (TextPart, ImagePart)):
        return p
    if isinstance(p, str):
        return TextPart(p)
    if not isinstance(p, Mapping):
        raise ContractError(f"{where}: expected a part dict, got {type(p).__name__}")
    kind = p.get("type")
    if kind == "text":
        text = p.get("text")
        if not isinstance(text, str):
            raise ContractError(f"{where}.text: expected a string")
        return TextPart(text)
    if kind == "image_url":
        spec = p.get("image_url")
        url = spec.get("url") if isinstance(spec, Mapping) else spec
        if not isinstance(url, str):
            raise ContractError(f"{where}.image_url.url: expected a string URL")
        return image_from_url(url, where)
    if kind == "image":
        if p.get("url"):
            return image_from_url(str(p["url"]), where)
        data, media_type = p.get("data"), p.get("media_type")
        if not isinstance(data, str) or not isinstance(media_type, str):
            raise ContractError(f"{where}: an image part needs 'url', or 'data' and 'media_type'")
        return ImagePart(data=data, media_type=media_type)
    raise ContractError(f"{where}.type: unknown part type {kind!r}; expected 'text' or 'image_url'")


def image_from_url(url: str, where: str = "image") -> ImagePart:
    """An `ImagePart` from a URL; ``data:`` URLs are split into media type and base64."""
    if not url.startswith("data:"):
        return ImagePart(url=url)
    head, sep, data = url.partition(",")
    if not sep or ";base64" not in head:
        raise ContractError(f"{where}: data URLs must be base64, e.g. data:image/png;base64,...")
    try:
        base64.b64decode(data[:64] + "=" * (-len(data[:64]) % 4), validate=True)
    except binascii.Error as exc:
        raise ContractError(f"{where}: the data URL's payload is not valid base64") from exc
    return ImagePart(data=data, media_type=head[5:].split(";")[0])


def _tool_call(c: Any, where: str) -> ToolCall:
    if isinstance(c, ToolCall):
        return c
    if not isinstance(c, Mapping):
        raise ContractError(f"{where}: expected a tool call dict, got {type(c).__name__}")
    fn = c.get("function", c)
    name = fn.get("name") if isinstance(fn, Mapping) else None
    if not isinstance(name, str) or not name:
        raise ContractError(f"{where}.function.name: missing")
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as exc:
            raise ContractError(f"{where}.function.arguments: not valid JSON ({exc.msg})") from exc
    if not isinstance(args, dict):
        raise ContractError(f"{where}.function.arguments: expected a JSON object")
    call_id = c.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise ContractError(f"{where}.id: missing; every tool call needs an id")
    data = c.get("provider_data")
    return ToolCall(call_id, name, args, data if isinstance(data, dict) else None)
