"""Any server that speaks OpenAI's Chat Completions: vLLM, SGLang, Ollama, LM Studio, Together,
Fireworks, Groq, DeepInfra, OpenRouter, Lambda, Cerebras, DeepSeek, ...

Servers differ in small ways. Those differences are data, in `PRESETS`, never branches:

- ``base_url``: where the server lives by default;
- ``max_tokens_field``: ``max_tokens`` (most servers) or ``max_completion_tokens``;
- ``stream_usage``: whether ``stream_options: {"include_usage": true}`` is accepted;
- ``structured_output``: ``json_schema`` (schema-constrained decoding), ``json_object`` (JSON
  mode: portal adds the schema to the system prompt and validates the reply) or ``none``
  (the schema goes in the prompt only);
- ``strict``: whether ``strict: true`` is understood (then the schema goes through the OpenAI
  strict transformer, as for OpenAI itself);
- ``headers``: extra headers (OpenRouter's ``HTTP-Referer`` / ``X-Title`` come from the
  ``app_url`` / ``app_name`` options);
- ``api_key_required``: local servers (vLLM, Ollama...) run without a key;
- ``tool_choice``: the tool_choice values the server accepts.

A preset is picked by ``options.preset``, else recognised from the base_url's host, else the
generic one; every field can be overridden in ``options`` (``options.stream_usage = false``).
Sources: each server's OpenAI-compatibility page (vLLM "OpenAI-Compatible Server", Ollama
"OpenAI compatibility", Groq "OpenAI Compatibility", OpenRouter "API reference", Together,
Fireworks, DeepInfra, Lambda, Cerebras, DeepSeek docs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar
from urllib.parse import urlparse

from portal.contracts.messages import Message
from portal.contracts.request import ChatRequest
from portal.contracts.responses import Usage
from portal.errors import ConfigError, ContractError
from portal.providers.adapter import Capabilities
from portal.providers.openai import OpenAIAdapter
from portal.providers.schema_transform import to_openai_strict
from portal.providers.settings import ProviderSettings

__all__ = ["PRESETS", "OpenAICompatibleAdapter", "Quirks"]


@dataclass(frozen=True, slots=True)
class Quirks:
    """How one OpenAI-compatible server differs from OpenAI (see the module docstring)."""

    base_url: str | None = None
    hosts: tuple[str, ...] = ()
    max_tokens_field: str = "max_tokens"
    stream_usage: bool = True
    structured_output: str = "json_schema"  # "json_schema" | "json_object" | "none"
    strict: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    api_key_required: bool = True
    tool_choice: tuple[str, ...] = ("auto", "none", "required", "named")
    embed: bool = True


_LOCAL = {"api_key_required": False}
PRESETS: dict[str, Quirks] = {
    "generic": Quirks(),
    "vllm": Quirks(base_url="http://localhost:8000/v1", **_LOCAL),  # type: ignore[arg-type]
    "sglang": Quirks(base_url="http://localhost:30000/v1", **_LOCAL),  # type: ignore[arg-type]
    "ollama": Quirks(
        base_url="http://localhost:11434/v1",
        hosts=("localhost:11434", "127.0.0.1:11434"),
        tool_choice=("auto", "none"),
        **_LOCAL,  # type: ignore[arg-type]
    ),
    "lmstudio": Quirks(
        base_url="http://localhost:1234/v1",
        hosts=("localhost:1234", "127.0.0.1:1234"),
        **_LOCAL,  # type: ignore[arg-type]
    ),
    "together": Quirks(base_url="https://api.together.xyz/v1", hosts=("api.together.xyz",)),
    "fireworks": Quirks(
        base_url="https://api.fireworks.ai/inference/v1", hosts=("api.fireworks.ai",)
    ),
    "groq": Quirks(
        base_url="https://api.groq.com/openai/v1",
        hosts=("api.groq.com",),
        max_tokens_field="max_completion_tokens",
        embed=False,
    ),
    "deepinfra": Quirks(
        base_url="https://api.deepinfra.com/v1/openai",
        hosts=("api.deepinfra.com",),
        structured_output="json_object",
    ),
    "openrouter": Quirks(
        base_url="https://openrouter.ai/api/v1", hosts=("openrouter.ai",), strict=True, embed=False
    ),
    "lambda": Quirks(
        base_url="https://api.lambda.ai/v1",
        hosts=("api.lambda.ai", "api.lambdalabs.com"),
        structured_output="json_object",
        embed=False,
    ),
    "cerebras": Quirks(
        base_url="https://api.cerebras.ai/v1",
        hosts=("api.cerebras.ai",),
        max_tokens_field="max_completion_tokens",
        strict=True,
        embed=False,
    ),
    "deepseek": Quirks(
        base_url="https://api.deepseek.com/v1",
        hosts=("api.deepseek.com",),
        structured_output="json_object",
        embed=False,
    ),
}
_QUIRK_FIELDS = {f.name for f in fields(Quirks)} - {"hosts"}


def resolve_quirks(settings: ProviderSettings) -> tuple[str, Quirks]:
    """The preset named in options, else the one whose host matches base_url, plus overrides."""
    opts = settings.options
    name = opts.get("preset")
    if name is not None and name not in PRESETS:
        raise ConfigError(
            f"provider {settings.name!r}: unknown preset {name!r}; "
            f"known presets: {', '.join(sorted(PRESETS))}"
        )
    if name is None:
        host = urlparse(settings.base_url or "").netloc.lower()
        name = next((n for n, q in PRESETS.items() if host and host in q.hosts), None)
        if name is None and settings.name in PRESETS:
            name = settings.name  # [providers.groq] kind = "openai-compatible"
        name = name or "generic"
    quirks = PRESETS[name]
    overrides = {k: v for k, v in opts.items() if k in _QUIRK_FIELDS}
    if "structured_output" in overrides and overrides["structured_output"] not in (
        "json_schema",
        "json_object",
        "none",
    ):
        raise ConfigError(
            f"provider {settings.name!r}: options.structured_output must be 'json_schema', "
            f"'json_object' or 'none', got {overrides['structured_output']!r}"
        )
    if "tool_choice" in overrides:
        overrides["tool_choice"] = tuple(overrides["tool_choice"])
    return name, replace(quirks, **overrides) if overrides else quirks


def caps_for(preset: str, quirks: Quirks, base: Capabilities) -> Capabilities:
    """`Capabilities` of one server. ``structured_output = "none"`` maps to None: the schema
    only goes in the prompt, which is no structured-output mode a contract can rely on."""
    mode = {"json_schema": "json_schema", "json_object": "json_object"}.get(
        quirks.structured_output
    )
    strict = quirks.strict and mode == "json_schema"
    return replace(
        base,
        tool_choice=tuple(quirks.tool_choice),
        structured_output=mode,
        schema_dialect="openai-strict" if strict else "json-schema",
        embed=quirks.embed,
        strict_tools=quirks.strict,
        notes=(*base.notes, f"preset {preset!r}"),
    )


class OpenAICompatibleAdapter(OpenAIAdapter):
    """Limits depend on the server; portal checks the ones in the preset (tool_choice values,
    structured-output mode) and leaves the rest to the server's error replies."""

    kind: ClassVar[str] = "openai-compatible"
    sends_prompt_cache_key: ClassVar[bool] = False
    option_names: ClassVar[frozenset[str] | None] = frozenset(
        {"preset", "app_url", "app_name", *_QUIRK_FIELDS}
    )
    default_base_url: ClassVar[str | None] = None
    api_key_env: ClassVar[str | None] = None
    capabilities: ClassVar[Capabilities] = Capabilities(
        structured_output="json_schema",
        schema_dialect="json-schema",
        embed=True,
        notes=("quirks per server in PRESETS; see docs/providers.md",),
    )

    def __init__(self, settings: ProviderSettings) -> None:
        self.preset, self.quirks = resolve_quirks(settings)
        super().__init__(settings)
        if not self.base_url:
            if self.quirks.base_url is None:
                raise ConfigError(
                    f"provider {settings.name!r} (openai-compatible): base_url is required "
                    f"unless options.preset names a known server ({', '.join(sorted(PRESETS))})"
                )
            self.base_url = self.quirks.base_url.rstrip("/")
        # instance attributes shadow the OpenAI class defaults: quirks are data
        self.max_tokens_field = self.quirks.max_tokens_field  # type: ignore[misc]
        self.stream_usage = self.quirks.stream_usage  # type: ignore[misc]
        self._caps = caps_for(self.preset, self.quirks, self.capabilities)

    @property
    def caps(self) -> Capabilities:
        """The preset's capabilities (tool_choice values, structured-output mode, strict
        dialect, embeddings), so contract checks judge this server, not the generic kind."""
        return self._caps

    def auth_headers(self) -> dict[str, str]:
        headers = dict(self.quirks.headers)
        if self.preset == "openrouter":
            opts = self.settings.options
            if opts.get("app_url"):
                headers["HTTP-Referer"] = str(opts["app_url"])
            if opts.get("app_name"):
                headers["X-Title"] = str(opts["app_name"])
        key = self.settings.api_key
        if key:
            headers["authorization"] = f"Bearer {key.get()}"
        elif self.quirks.api_key_required:
            self.api_key()  # raises AuthenticationError naming the provider
        return headers

    def map_tool_choice(self, choice: str) -> Any:
        wanted = choice if choice in ("auto", "none", "required") else "named"
        if wanted not in self.quirks.tool_choice:
            raise ContractError(
                f"provider {self.name!r} (openai-compatible, preset {self.preset!r}) does not "
                f"accept tool_choice={choice!r}; it accepts {', '.join(self.quirks.tool_choice)}"
            )
        return super().map_tool_choice(choice)

    def map_tool(self, tool: Any) -> dict[str, Any]:
        fn: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
        if tool.description:
            fn["description"] = tool.description
        if tool.strict:
            if not self.quirks.strict:
                raise ContractError(
                    f"tool {tool.name!r}: strict=True cannot be honoured by provider "
                    f"{self.name!r} (openai-compatible, preset {self.preset!r}): the server is "
                    "not known to enforce strict tools, and portal will not send the tool as "
                    "if it were strict; set options.strict = true if the server supports "
                    "OpenAI strict mode, or drop strict for this target"
                )
            fn["parameters"] = to_openai_strict(tool.parameters, f"tool {tool.name!r}").schema
            fn["strict"] = True
        return {"type": "function", "function": fn}

    def chat_body(self, req: ChatRequest, model: str) -> dict[str, Any]:
        mode = self.quirks.structured_output
        if req.output is not None and mode != "json_schema":
            req = req.with_messages(self._schema_instruction(req))
        body = super().chat_body(req, model)
        if req.output is not None and mode == "none":
            body.pop("response_format", None)
        return body

    def map_output(self, req: ChatRequest) -> dict[str, Any]:
        assert req.output is not None
        if self.quirks.structured_output == "json_object":
            return {"type": "json_object"}
        if self.quirks.strict:
            return super().map_output(req)
        return {
            "type": "json_schema",
            "json_schema": {"name": req.output.name, "schema": req.output.schema},
        }

    def finalize(self, req: ChatRequest, response: Any) -> Any:
        if self.quirks.strict:
            return super().finalize(req, response)
        return response

    @staticmethod
    def _schema_instruction(req: ChatRequest) -> list[Message]:
        """JSON mode only promises JSON; the schema goes in the system prompt."""
        assert req.output is not None
        note = (
            "Reply with a single JSON object, no prose, that matches this JSON Schema:\n"
            + json.dumps(req.output.schema, ensure_ascii=False)
        )
        msgs = list(req.messages)
        if msgs and msgs[0].role == "system":
            first = msgs[0]
            msgs[0] = Message("system", f"{first.text}\n\n{note}" if first.text else note)
        else:
            msgs.insert(0, Message("system", note))
        return msgs

    def usage_from_chunk(self, chunk: Mapping[str, Any]) -> Usage | None:
        """Groq reports stream usage under ``x_groq.usage`` rather than ``usage``."""
        usage = super().usage_from_chunk(chunk)
        if usage is None:
            extra = chunk.get("x_groq")
            if isinstance(extra, dict) and isinstance(extra.get("usage"), dict):
                usage = self.parse_usage(extra["usage"])
        return usage

    def build_embed(self, req: Any, model: str) -> Any:
        if not self.quirks.embed:
            raise ContractError(
                f"provider {self.name!r} (preset {self.preset!r}) has no embeddings endpoint; "
                "route embeddings to another provider"
            )
        return super().build_embed(req, model)
