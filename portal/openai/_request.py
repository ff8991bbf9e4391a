"""OpenAI ``chat.completions.create`` / ``embeddings.create`` arguments -> portal call arguments.

Pure translation, shared by the OpenAI-shaped clients and the httpx2 transport (which reads the
same fields from the JSON body the official SDK sends). What portal can carry to every vendor
is translated; what only one vendor understands is refused with the fix (send it through
``extra_body={"portal": {"provider_options": {...}}}`` to the kinds that take it), so a
parameter is never dropped silently on the way to another vendor.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from portal.contracts.output import OutputSpec
from portal.errors import ConfigError, ContractError

__all__ = [
    "CHAT_PORTAL_KEYS",
    "ChatArgs",
    "EmbedArgs",
    "chat_args",
    "embed_args",
    "is_given",
]

#: keys of ``extra_body["portal"]`` on a chat call
CHAT_PORTAL_KEYS = ("feature", "key", "provider_options", "tags", "tenant", "timeout_s")
#: keys of ``extra_body["portal"]`` on an embeddings call
EMBED_PORTAL_KEYS = ("feature", "input_type", "key", "timeout_s")

#: OpenAI parameters that only OpenAI-wire vendors understand: refused with the fix
_VENDOR_ONLY = frozenset(
    {
        "audio",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "modalities",
        "moderation",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "reasoning_effort",
        "service_tier",
        "top_logprobs",
        "verbosity",
        "web_search_options",
    }
)
#: parameters read here; everything else in a request is unknown
_CHAT_KNOWN = frozenset(
    {
        "messages",
        "model",
        "tools",
        "tool_choice",
        "response_format",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "n",
        "parallel_tool_calls",
        "user",
        "safety_identifier",
        "metadata",
        "store",
        "portal",
        "functions",
        "function_call",
    }
)
_ROLES = {"developer": "system", "system": "system", "user": "user", "assistant": "assistant"}
_PART_TYPES = ("text", "image_url")
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def is_given(value: Any) -> bool:
    """False for None and for the openai SDK's ``omit`` / ``NOT_GIVEN`` sentinels."""
    if value is None:
        return False
    name = type(value).__name__
    return not (name in ("Omit", "NotGiven") and type(value).__module__.startswith("openai"))


@dataclass(slots=True)
class ChatArgs:
    """What `AsyncClient.chat` / `stream` is called with, plus how to shape the reply."""

    call: dict[str, Any]
    model: str
    stream: bool = False
    include_usage: bool = False
    parsed: Any = None  # the pydantic model of ``parse()``, if any


@dataclass(slots=True)
class EmbedArgs:
    call: dict[str, Any]
    model: str
    base64: bool = False


def _portal_options(body: Mapping[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    raw = body.get("portal")
    if not is_given(raw):
        return {}
    if not isinstance(raw, Mapping):
        raise ContractError(
            f'extra_body["portal"]: expected a dict of portal options, got {type(raw).__name__}'
        )
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ContractError(
            f'extra_body["portal"]: unknown key(s) {", ".join(map(repr, unknown))}; '
            f"portal options here are {', '.join(allowed)}"
        )
    return dict(raw)


def _model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ContractError("model: expected a feature name or a 'provider:model' id")
    return model


def _target(model: str, options: dict[str, Any], features: Mapping[str, Any]) -> dict[str, Any]:
    """``model`` is a feature of the config or a ``provider:model`` id."""
    feature = options.pop("feature", None)
    if feature is not None and not isinstance(feature, str):
        raise ContractError('extra_body["portal"]["feature"]: expected a feature name')
    if model in features:
        if feature is not None and feature != model:
            raise ContractError(
                f'model {model!r} is a feature; extra_body["portal"]["feature"]={feature!r} '
                "names another. Pass one of them"
            )
        return {"feature": model}
    if ":" not in model:
        known = ", ".join(sorted(features)) or "none configured"
        raise ConfigError(
            f"model {model!r}: not a feature of this config (features: {known}) and not a "
            "'provider:model' id such as 'openai:gpt-4.1-mini'"
        )
    return {"model": model, "feature": feature} if feature else {"model": model}


def chat_args(body: Mapping[str, Any], features: Mapping[str, Any]) -> ChatArgs:
    """Translate one chat request (keyword arguments or the SDK's JSON body)."""
    body = {k: v for k, v in body.items() if is_given(v)}
    for name in body:
        if name in _VENDOR_ONLY:
            raise ContractError(
                f"{name}: portal has no portable equivalent of this OpenAI parameter; to send "
                "it to OpenAI-wire vendors only, pass extra_body={'portal': {'provider_options': "
                f"{{'openai': {{'{name}': ...}}}}}}}}"
            )
        if name not in _CHAT_KNOWN:
            raise ContractError(
                f"{name}: unknown chat.completions parameter; portal's own options go in "
                f"extra_body={{'portal': {{...}}}} ({', '.join(CHAT_PORTAL_KEYS)}), vendor "
                "fields in extra_body={'portal': {'provider_options': {'<kind>': {...}}}}"
            )
    if "functions" in body or "function_call" in body:
        raise ContractError(
            "functions / function_call: the deprecated function-calling parameters are not "
            "supported; pass tools=[{'type': 'function', 'function': {...}}] and tool_choice="
        )
    options = _portal_options(body, CHAT_PORTAL_KEYS)
    model = _model(body)
    call = _target(model, options, features)
    call["messages"] = [_message(m, i) for i, m in enumerate(_listed(body.get("messages")))]
    if "tools" in body:
        call["tools"] = [_tool(t, i) for i, t in enumerate(_listed(body["tools"], "tools"))]
    if "tool_choice" in body:
        call["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("parallel_tool_calls") is False:
        raise ContractError(
            "parallel_tool_calls=False: portal cannot make every vendor call one tool at a "
            "time; leave it unset, or use tool_choice='<tool name>'"
        )
    if body.get("store"):
        raise ContractError("store=True: portal keeps its own ledger; leave store unset")
    n = body.get("n", 1)
    if n != 1:
        raise ContractError(f"n={n!r}: portal returns one choice per call; leave n unset or 1")
    fmt = body.get("response_format")
    if fmt is not None:
        spec = _response_format(fmt)
        if spec is not None:
            call["output"] = spec
    for name in ("temperature", "top_p", "seed"):
        if name in body:
            call[name] = body[name]
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if (
        "max_tokens" in body
        and "max_completion_tokens" in body
        and body["max_tokens"] != body["max_completion_tokens"]
    ):
        raise ContractError("max_tokens and max_completion_tokens differ; pass one of them")
    if limit is not None:
        call["max_tokens"] = limit
    stop = body.get("stop")
    if stop is not None:
        call["stop"] = [stop] if isinstance(stop, str) else list(stop)
    key = options.get("key", body.get("user", body.get("safety_identifier")))
    if key is not None:
        call["key"] = str(key)
    tags = options.get("tags", body.get("metadata"))
    if tags is not None:
        if not isinstance(tags, Mapping):
            raise ContractError('extra_body["portal"]["tags"]: expected a dict of strings')
        call["tags"] = {str(k): str(v) for k, v in tags.items()}
    for name in ("tenant", "provider_options", "timeout_s"):
        if name in options:
            call[name] = options[name]
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, Mapping):
        raise ContractError("stream_options: expected a dict such as {'include_usage': True}")
    return ChatArgs(
        call,
        model,
        stream=bool(body.get("stream")),
        include_usage=bool(stream_options.get("include_usage")),
    )


def embed_args(body: Mapping[str, Any], features: Mapping[str, Any]) -> EmbedArgs:
    """Translate one embeddings request."""
    body = {k: v for k, v in body.items() if is_given(v)}
    unknown = sorted(
        set(body) - {"model", "input", "dimensions", "encoding_format", "user", "portal"}
    )
    if unknown:
        raise ContractError(
            f"embeddings: unknown parameter(s) {', '.join(unknown)}; portal's own options go "
            f"in extra_body={{'portal': {{...}}}} ({', '.join(EMBED_PORTAL_KEYS)})"
        )
    options = _portal_options(body, EMBED_PORTAL_KEYS)
    model = _model(body)
    call = _target(model, options, features)
    given = body.get("input")
    inputs = [given] if isinstance(given, str) else given
    if not isinstance(inputs, list) or not inputs or not all(isinstance(s, str) for s in inputs):
        raise ContractError(
            "input: expected a string or a non-empty list of strings (token arrays are not "
            "portable across vendors)"
        )
    call["inputs"] = inputs
    if "dimensions" in body:
        call["dimensions"] = body["dimensions"]
    key = options.get("key", body.get("user"))
    if key is not None:
        call["key"] = str(key)
    for name in ("input_type", "timeout_s"):
        if name in options:
            call[name] = options[name]
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise ContractError(f"encoding_format: expected 'float' or 'base64', got {fmt!r}")
    return EmbedArgs(call, model, base64=fmt == "base64")


# ----------------------------------------------------------------------------- pieces


def _listed(value: Any, name: str = "messages") -> list[Any]:
    if isinstance(value, (str, bytes, Mapping)) or value is None:
        raise ContractError(f"{name}: expected a list, got {type(value).__name__}")
    try:
        return list(value)
    except TypeError:
        raise ContractError(f"{name}: expected a list, got {type(value).__name__}") from None


def _as_dict(value: Any, where: str) -> dict[str, Any]:
    """A dict, or an SDK object such as the ``ChatCompletionMessage`` of an earlier reply."""
    if isinstance(value, Mapping):
        return dict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dict(dump(exclude_none=True))
    raise ContractError(f"{where}: expected a dict, got {type(value).__name__}")


def _message(raw: Any, i: int) -> dict[str, Any]:
    where = f"messages[{i}]"
    m = {k: v for k, v in _as_dict(raw, where).items() if v is not None}
    role = m.get("role")
    if role == "tool":
        return _tool_message(m, where)
    if role not in _ROLES:
        raise ContractError(
            f"{where}.role: {role!r} is not one of developer, system, user, assistant, tool"
        )
    for key in ("audio", "function_call"):
        if key in m:
            raise ContractError(f"{where}.{key}: not supported by portal; drop it")
    out: dict[str, Any] = {"role": _ROLES[role]}
    content = m.get("content")
    if isinstance(content, list):
        content = _parts(content, where, assistant=role == "assistant")
    if content is not None:
        out["content"] = content
    if "name" in m:
        out["name"] = m["name"]
    calls = m.get("tool_calls")
    if calls:
        out["tool_calls"] = [_tool_call(c, f"{where}.tool_calls[{j}]") for j, c in enumerate(calls)]
        out.setdefault("content", None)
    elif "content" not in out and m.get("refusal"):
        out["content"] = m["refusal"]  # an assistant refusal replayed: what the model said
    return out


def _tool_message(m: dict[str, Any], where: str) -> dict[str, Any]:
    content = m.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in _parts(content, where, assistant=False))
    out = {"role": "tool", "tool_call_id": m.get("tool_call_id"), "content": content}
    if "name" in m:
        out["name"] = m["name"]
    return out


def _parts(parts: list[Any], where: str, *, assistant: bool) -> list[dict[str, Any]]:
    out = []
    for j, p in enumerate(parts):
        part = _as_dict(p, f"{where}.content[{j}]")
        kind = part.get("type")
        if kind == "refusal" and assistant:
            part = {"type": "text", "text": part.get("refusal", "")}
        elif kind not in _PART_TYPES:
            raise ContractError(
                f"{where}.content[{j}].type: {kind!r} parts are not supported by portal "
                f"(supported: {', '.join(_PART_TYPES)})"
            )
        if kind == "image_url" and isinstance(part.get("image_url"), Mapping):
            part = {"type": "image_url", "image_url": {"url": part["image_url"].get("url")}}
        out.append(part)
    return out


def _tool_call(raw: Any, where: str) -> dict[str, Any]:
    call = _as_dict(raw, where)
    if call.get("type", "function") != "function":
        raise ContractError(f"{where}.type: only function tool calls are supported")
    return {"id": call.get("id"), "type": "function", "function": call.get("function")}


def _tool(raw: Any, i: int) -> dict[str, Any]:
    t = _as_dict(raw, f"tools[{i}]")
    if t.get("type") != "function" or not isinstance(t.get("function"), Mapping):
        raise ContractError(
            f"tools[{i}].type: {t.get('type')!r} tools are not supported by portal; pass "
            "{'type': 'function', 'function': {'name': ..., 'parameters': {...}}}"
        )
    return t


def _tool_choice(choice: Any) -> str:
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise ContractError(
                f"tool_choice: expected 'auto', 'none' or 'required', got {choice!r}"
            )
        return choice
    c = _as_dict(choice, "tool_choice")
    fn = c.get("function")
    if c.get("type") == "function" and isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
        return str(fn["name"])
    raise ContractError(
        "tool_choice: expected 'auto', 'none', 'required' or "
        "{'type': 'function', 'function': {'name': ...}}"
    )


def _response_format(fmt: Any) -> OutputSpec | None:
    if isinstance(fmt, type):
        raise ContractError(
            "response_format: a pydantic model is for chat.completions.parse(); create() "
            "takes {'type': 'json_schema', 'json_schema': {...}}"
        )
    f = _as_dict(fmt, "response_format")
    kind = f.get("type")
    if kind == "text":
        return None
    if kind == "json_schema":
        spec = f.get("json_schema")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("schema"), Mapping):
            raise ContractError("response_format.json_schema.schema: missing")
        name = spec.get("name") or "output"
        if not isinstance(name, str) or not _NAME.match(name):
            raise ContractError(
                f"response_format.json_schema.name: 1-64 letters, digits, _ or -, got {name!r}"
            )
        return replace(OutputSpec.of(dict(spec["schema"])), name=name)
    if kind == "json_object":
        raise ContractError(
            "response_format {'type': 'json_object'}: portal asks every vendor for a JSON "
            "Schema; pass {'type': 'json_schema', 'json_schema': {'name': ..., 'schema': {...}}}"
        )
    raise ContractError(f"response_format.type: expected 'text' or 'json_schema', got {kind!r}")
