"""Google Gemini: the Gemini API (``kind = "gemini"``) and Vertex AI (``kind = "vertex"``).

Wire format: the Gemini API REST reference (``models.generateContent``,
``models.streamGenerateContent``, ``models.batchEmbedContents``) and the field names of
googleapis/python-genai ``google/genai/types.py`` (``Content``, ``Part``, ``FunctionCall``,
``FunctionResponse``, ``FunctionCallingConfig``, ``GenerationConfig``,
``GenerateContentResponse``, ``GenerateContentResponseUsageMetadata``, ``FinishReason``,
``BlockedReason``). Vertex AI serves the same bodies under
``/v1/projects/{project}/locations/{location}/publishers/google/models/{model}``.

Choices made here, and why:

- Schemas go out as ``responseSchema`` / ``parameters`` translated to Gemini's OpenAPI subset
  (gemini_schema.py): that works on every model on both APIs and lets CI refuse what cannot be
  expressed. ``options = { json_schema = true }`` sends full JSON Schema instead through
  ``responseJsonSchema`` / ``parametersJsonSchema`` (newer models only).
- Tool call ids: Gemini may or may not return ``functionCall.id``. When absent, a stable id is
  derived from the reply id, the call's position, name and arguments (same reply, same id).
  Tool results need the function NAME, found from the assistant turn that issued the id, so
  ids minted by any vendor round-trip. Ids are sent back to the Gemini API; Vertex gets none
  (its FunctionCall/FunctionResponse ``id`` is Gemini-API-only).
- Thought signatures: Gemini 3 rejects replayed function calls without their
  ``thoughtSignature``. A parsed call carries its signature in
  ``ToolCall.provider_data = {"gemini": {"thought_signature": ...}}`` (JSON and stream alike),
  so it travels with the conversation (across processes, through any store that keeps the
  message) and is sent back on the part it came on. Gemini API and Vertex share the key: both
  serve the same models. The first call of a turn without a signature (another vendor's call)
  gets Google's documented placeholder ``skip_thought_signature_validator``. Other vendors'
  ``provider_data`` is never sent.
- Finish reasons: STOP -> stop (tool_calls when calls came back), MAX_TOKENS -> length, the
  safety family -> content_filter, MALFORMED_FUNCTION_CALL / UNEXPECTED_TOOL_CALL /
  TOO_MANY_TOOL_CALLS / LANGUAGE -> error. Default for OTHER, unspecified and unknown values:
  "stop" when the candidate carried text or calls, "error" when it carried nothing.
  A prompt block (``promptFeedback.blockReason``) or a safety stop with nothing produced
  raises `ContentFiltered`, so a router can fail over.
- Prompt caching: Gemini caches implicitly. A cache marker with a lifetime (``cache="5m"`` /
  ``"1h"``), or any marker with ``options = { explicit_cache = true }`` (the vendor's default
  lifetime, one hour), asks for an explicit cache: the marked prefix (the system instruction,
  the tools and their config, the contents up to the last marked message) is created once
  with ``cachedContents.create`` (``POST v1beta/cachedContents`` on the Gemini API, ``POST
  v1/projects/{p}/locations/{l}/cachedContents`` on Vertex AI, whose ``model`` is the full
  ``projects/{p}/locations/{l}/publishers/google/models/{m}``; both with ``contents``,
  ``systemInstruction``, ``tools``, ``toolConfig``, ``ttl``) and each request then sends only
  what follows it, with ``cachedContent`` set to the returned name (a request using a cache
  may not set its own system instruction, tools or tool config). The name is kept in the
  adapter's `CacheNames` (the routing state, shared fleet-wide, when a client runs it) until
  shortly before its TTL ends; one creation at a time per prefix (a call that finds another
  one creating it goes without it); a reply saying the named cache is gone drops the name and
  the flow creates it once more. Creating it is billed as cache writes at the input price
  (``usageMetadata.totalTokenCount``) plus its storage for the TTL
  (``Usage.cache_storage_token_hours``, priced by the config's ``cache_storage``).
- Usage: ``promptTokenCount`` already includes ``cachedContentTokenCount`` (the reference says
  so) and ``toolUsePromptTokenCount`` is added to input; thoughts are billed as output, so
  ``output_tokens = candidatesTokenCount + thoughtsTokenCount`` and ``reasoning_tokens`` is the
  thoughts share.
- Parts: ``text`` parts are the answer, ``functionCall`` parts the calls. Parts with
  ``"thought": true`` and a ``text`` (thought summaries, returned when
  ``generationConfig.thinkingConfig.includeThoughts`` is true) are never in the answer: their
  text is ``Response.reasoning`` (a stream emits each piece as a ``reasoning`` event).
  Consecutive thought parts are one block (a stream splits a block over chunks); a block ends
  at the next part with answer text, a call or other content, and blocks are joined by a blank
  line. Reasoning is never sent back; only a call's ``thoughtSignature`` is. Any other part
  (``inlineData``, ``executableCode``, a part type added later) is kept as sent in
  ``provider_details["unknown_content"]`` (``["unknown_events"]`` in a stream, capped at
  `MAX_UNKNOWN_EVENTS`), never in the text.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
import threading
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

from portal.contracts.cache import explicit_ttls, marked
from portal.contracts.messages import ImagePart, Message, TextPart, ToolCall
from portal.contracts.request import ChatRequest, EmbedRequest
from portal.contracts.responses import EmbedResponse, Response, StreamEvent, Usage
from portal.contracts.tools import ToolSpec
from portal.errors import (
    AuthenticationError,
    ConfigError,
    ContentFiltered,
    ContextTooLong,
    ContractError,
    NotFound,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from portal.providers.adapter import Adapter, Capabilities
from portal.providers.error_replies import error_class_for_status
from portal.providers.gemini_schema import to_gemini_schema
from portal.providers.reasoning import ReasoningBlocks
from portal.providers.streaming import SSEStreamParser, StreamParser
from portal.providers.tool_names import renamed_tools, request_with_names
from portal.providers.unknown import keep_unknown
from portal.wire import WireReply, WireRequest

__all__ = ["GeminiAdapter", "GeminiStreamParser", "VertexAdapter"]

FINISH_REASON_MAP: dict[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "LANGUAGE": "error",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
}

#: google.rpc status -> error class (https://cloud.google.com/apis/design/errors)
STATUS_MAP: dict[str, type[ProviderError]] = {
    "UNAUTHENTICATED": AuthenticationError,
    "PERMISSION_DENIED": AuthenticationError,
    "NOT_FOUND": NotFound,
    "RESOURCE_EXHAUSTED": RateLimited,
    "UNAVAILABLE": Overloaded,
    "INTERNAL": ServerError,
    "UNKNOWN": ServerError,
    "DEADLINE_EXCEEDED": ProviderTimeout,
}

#: Google's documented placeholder for function calls that came from elsewhere
SKIP_SIGNATURE = "skip_thought_signature_validator"
#: Part fields that are metadata, not data: a part with only these carries nothing to keep
_PART_METADATA = frozenset({"thought", "thoughtSignature"})
#: the ``ToolCall.provider_data`` namespace this adapter reads and writes
PROVIDER_DATA_KEY = "gemini"
_STOP_SEQUENCES_MAX = 5
_EMBED_BATCH_MAX = 100
_TASK_TYPES = {"query": "RETRIEVAL_QUERY", "document": "RETRIEVAL_DOCUMENT"}
_TOKEN_LIMIT = re.compile(
    r"input token count .* exceeds|exceeds the maximum number of tokens",
    re.IGNORECASE,
)


class GeminiAdapter(Adapter):
    """Gemini API. Documented limits used: 512 function declarations per request, 5 stop
    sequences, 100 texts per batchEmbedContents, enum values are strings, function names up to
    128 characters (portal's ToolSpec caps at 64)."""

    kind: ClassVar[str] = "gemini"
    option_names: ClassVar[frozenset[str] | None] = frozenset({"json_schema", "explicit_cache"})
    #: explicit caches (``cachedContents``) take any lifetime
    cache_ttls: ClassVar[tuple[str, ...]] = ("5m", "1h")
    #: whether marked prefixes may become explicit ``cachedContents`` (Gemini API only)
    explicit_caching: ClassVar[bool] = True
    default_base_url: ClassVar[str | None] = "https://generativelanguage.googleapis.com"
    api_key_env: ClassVar[str | None] = "GEMINI_API_KEY"
    api_version: ClassVar[str] = "v1beta"
    #: whether tool call ids are replayed (the Gemini API has them; Vertex does not)
    replay_call_ids: ClassVar[bool] = True
    capabilities: ClassVar[Capabilities] = Capabilities(
        strict_tools=False,
        structured_output="response_schema",
        schema_dialect="openapi-3.0-subset",
        embed=True,
        max_tools=512,
        notes=(
            "tool_choice 'required' -> mode ANY, a tool name -> ANY + allowedFunctionNames",
            "images: base64 -> inlineData, URL -> fileData (mimeType from media_type or URL)",
            "at most 5 stop sequences",
            "enum and const values must be strings",
            "recursive $ref, not, if/then/else, patternProperties, maps, tuples are refused",
        ),
    )

    # -- endpoints ------------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.api_key()}

    def model_url(self, model: str) -> str:
        return f"{self.base_url}/{self.api_version}/{self.model_name(model)}"

    def model_name(self, model: str) -> str:
        """The model's resource name, as ``cachedContents`` bodies name it."""
        return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"

    def cache_create_url(self) -> str:
        """Where ``cachedContents.create`` is posted."""
        return f"{self.base_url}/{self.api_version}/cachedContents"

    @staticmethod
    def cache_name_ok(name: str) -> bool:
        """Whether ``name`` is a cache resource name this API returns."""
        return name.startswith("cachedContents/")

    @property
    def json_schema_mode(self) -> bool:
        return bool(self.settings.options.get("json_schema", False))

    # -- request ---------------------------------------------------------------------------
    def build_chat(self, req: ChatRequest, model: str) -> WireRequest:
        body = self.chat_body(req, model)
        plan = self.cache_plan(req, model) if self.explicit_caching and marked(req) else None
        if plan is not None:
            name = self.cache_names.get(plan.key)
            if name is not None:  # the prefix lives in the cache: send what follows it
                for field in ("systemInstruction", "tools", "toolConfig"):
                    body.pop(field, None)
                body["contents"] = body["contents"][plan.cached_contents :]
                body["cachedContent"] = name
        url = self.model_url(model)
        headers = self.auth_headers()
        if req.stream:
            headers["accept"] = "text/event-stream"
            return self.json_request(url + ":streamGenerateContent?alt=sse", body, headers)
        return self.json_request(url + ":generateContent", body, headers)

    # -- explicit prompt caches --------------------------------------------------------------
    def cache_plan(self, req: ChatRequest, model: str) -> _CachePlan | None:
        """The ``cachedContents.create`` body of the request's marked prefix, or None when
        the request asks for no explicit cache (no lifetime on its markers and no
        ``explicit_cache`` option)."""
        ttls = explicit_ttls(req)
        if ttls:
            ttl_s = max(_LIFETIME_S[t] for t in ttls)
        elif self.settings.options.get("explicit_cache"):
            ttl_s = _DEFAULT_CACHE_TTL_S
        else:
            return None
        renamed = renamed_tools(req) if req.tools else None
        if renamed:
            req = request_with_names(req, renamed)
        last = max((i for i, m in enumerate(req.messages) if m.cache), default=-1)
        system, contents = self.map_messages(req.messages)
        _, cached = self.map_messages(req.messages[: last + 1])
        if contents[: len(cached)] != cached:
            raise ContractError(
                f"messages[{last}].cache: the marker splits a run of tool results that Gemini "
                "sends as one turn; put it on the last tool result of the run"
            )
        if len(cached) == len(contents):
            raise ContractError(
                f"messages[{last}].cache: nothing follows the cached prefix; Gemini needs "
                "content after an explicit cache (mark an earlier message)"
            )
        body: dict[str, Any] = {"model": self.model_name(model)}
        if cached:
            body["contents"] = cached
        self._put_instructions(body, system, req)
        body["ttl"] = f"{ttl_s:g}s"
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        # the provider's name too: two accounts never share a name, even through one state
        key = f"{self.kind}:{self.name}:{hashlib.sha256(text.encode()).hexdigest()}"
        return _CachePlan(key, body, ttl_s, len(cached))

    def cache_setup(self, req: ChatRequest, model: str) -> WireRequest | None:
        if not self.explicit_caching or not marked(req):
            return None
        plan = self.cache_plan(req, model)
        if plan is None or self.cache_names.get(plan.key) is not None:
            return None
        if not self.cache_names.claim(plan.key, _CREATING_S):
            return None  # another call (here or on another replica) is creating it
        return self.json_request(self.cache_create_url(), plan.body, self.auth_headers())

    def cache_ready(self, req: ChatRequest, model: str, reply: WireReply) -> Usage:
        """Keep the created cache's name for its TTL (less a margin, so no request reaches
        it as it expires) where every process sharing the routing state finds it, and bill
        its tokens as cache writes at the input price plus its storage for the TTL."""
        plan = self.cache_plan(req, model)
        assert plan is not None
        try:
            if reply.status >= 400:
                raise self.parse_error(reply, model)
            try:
                data = reply.json()
            except (ValueError, UnicodeDecodeError):
                raise self.invalid("cachedContents.create: the reply is not JSON", model) from None
            name = data.get("name") if isinstance(data, dict) else None
            if not isinstance(name, str) or not self.cache_name_ok(name):
                raise self.invalid(
                    "cachedContents.create: the reply names no cachedContents resource", model
                )
        except BaseException:
            self.cache_names.release(plan.key)  # the next call may try again
            raise
        # the claim is kept until it expires: a replica whose copy of the state has not seen
        # the name yet goes without the cache rather than create a second one
        self.cache_names.put(plan.key, name, plan.ttl_s - min(60.0, plan.ttl_s / 10))
        tokens = int((data.get("usageMetadata") or {}).get("totalTokenCount") or 0)
        return Usage(
            input_tokens=tokens,
            cache_write_tokens=tokens,
            cache_storage_token_hours=tokens * plan.ttl_s / 3600.0,
        )

    def cache_lost(self, req: ChatRequest, model: str, reply: WireReply) -> bool:
        """The cache the chat referred to expired or was deleted before its name said: a
        404 to a request naming a cache, or a 400, 403 or 404 whose message names the
        cached content (the Gemini API answers 403 "CachedContent not found (or permission
        denied)"). A 404 that was not about the cache fails again on the retry."""
        if reply.status not in (400, 403, 404) or not self.explicit_caching or not marked(req):
            return False
        try:
            plan = self.cache_plan(req, model)
        except ContractError:
            return False
        if plan is None:
            return False
        name = self.cache_names.get(plan.key)
        text = reply.body[:4096].decode("utf-8", "replace").lower()
        about_cache = "cachedcontent" in text or "cached content" in text
        if not about_cache and not (reply.status == 404 and name is not None):
            return False
        if name is not None:
            self.cache_names.drop(plan.key, name)
        self.cache_names.release(plan.key)  # so the flow may create it again at once
        return True

    def cache_creation_ttl(self, req: ChatRequest, model: str) -> float | None:
        if not self.explicit_caching or not marked(req):
            return None
        try:
            plan = self.cache_plan(req, model)
        except ContractError:
            return None  # refused when the call is built
        if plan is None or self.cache_names.get(plan.key) is not None:
            return None
        return plan.ttl_s

    def _put_instructions(self, body: dict[str, Any], system: list[Any], req: ChatRequest) -> None:
        """The system instruction, tools and tool config of ``req``, where Gemini reads them
        (a ``generateContent`` body and a ``cachedContents`` body alike)."""
        if system:
            body["systemInstruction"] = {"parts": system}
        if req.tools:
            body["tools"] = [{"functionDeclarations": [self.map_tool(t) for t in req.tools]}]
        if req.tool_choice is not None:
            body["toolConfig"] = {"functionCallingConfig": self.map_tool_choice(req)}

    def chat_body(self, req: ChatRequest, model: str) -> dict[str, Any]:
        system, contents = self.map_messages(req.messages)
        body: dict[str, Any] = {"contents": contents}
        self._put_instructions(body, system, req)
        config: dict[str, Any] = {}
        if req.temperature is not None:
            config["temperature"] = req.temperature
        if req.top_p is not None:
            config["topP"] = req.top_p
        if req.max_tokens is not None:
            config["maxOutputTokens"] = req.max_tokens
        if req.stop:
            if len(req.stop) > _STOP_SEQUENCES_MAX:
                raise ContractError(
                    f"stop: Gemini takes at most {_STOP_SEQUENCES_MAX} stop sequences, "
                    f"got {len(req.stop)}; pass fewer"
                )
            config["stopSequences"] = list(req.stop)
        if req.seed is not None:
            config["seed"] = req.seed
        if req.output is not None:
            config.update(self.map_output(req))
        options = dict(req.options_for(self.kind))
        extra_config = options.pop("generationConfig", None)
        if isinstance(extra_config, Mapping):
            config.update(extra_config)
        if config:
            body["generationConfig"] = config
        body.update(options)
        return body

    def map_messages(
        self, messages: list[Message]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(systemInstruction parts, contents). Consecutive tool results become one user turn
        of functionResponse parts, the shape Gemini documents for parallel calls."""
        names: dict[str, str] = {}
        for m in messages:
            for call in m.tool_calls or ():
                names[call.id] = call.name
        system: list[dict[str, Any]] = []
        contents: list[dict[str, Any]] = []
        for i, m in enumerate(messages):
            if m.role == "system":
                if m.text:
                    system.append({"text": m.text})
            elif m.role == "user":
                contents.append({"role": "user", "parts": [self.map_part(p) for p in m.parts]})
            elif m.role == "assistant":
                contents.append({"role": "model", "parts": self.map_assistant(m)})
            else:
                part = {"functionResponse": self.map_tool_result(m, names, i)}
                last = contents[-1] if contents else None
                if (
                    last
                    and last["role"] == "user"
                    and all("functionResponse" in p for p in last["parts"])
                ):
                    last["parts"].append(part)
                else:
                    contents.append({"role": "user", "parts": [part]})
        return system, contents

    def map_part(self, part: TextPart | ImagePart) -> dict[str, Any]:
        if isinstance(part, TextPart):
            return {"text": part.text}
        if part.data is not None:
            return {"inlineData": {"mimeType": part.media_type, "data": part.data}}
        assert part.url is not None
        mime = part.media_type or mimetypes.guess_type(part.url.split("?")[0])[0]
        if not mime:
            raise ContractError(
                f"image {part.url[:80]!r}: Gemini's fileData needs a MIME type and none can be "
                "guessed from the URL; pass ImagePart(url=..., media_type='image/png')"
            )
        return {"fileData": {"mimeType": mime, "fileUri": part.url}}

    def map_assistant(self, m: Message) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = [{"text": m.text}] if m.text else []
        for n, call in enumerate(m.tool_calls or ()):
            fc: dict[str, Any] = {"name": call.name, "args": call.arguments}
            if self.replay_call_ids:
                fc["id"] = call.id
            part: dict[str, Any] = {"functionCall": fc}
            signature = thought_signature(call)
            if signature is None and n == 0:
                # Gemini 3 validates the signature of the first call of each step
                signature = SKIP_SIGNATURE
            if signature is not None:
                part["thoughtSignature"] = signature
            parts.append(part)
        return parts

    def map_tool_result(self, m: Message, names: Mapping[str, str], index: int) -> dict[str, Any]:
        call_id = m.tool_call_id or ""
        name = m.name or names.get(call_id)
        if not name:
            raise ContractError(
                f"messages[{index}]: tool result for call {call_id!r} has no function name and "
                "no earlier assistant turn issued that call id; Gemini needs the name: pass "
                "tool_result(..., name='the_tool')"
            )
        text = m.text
        try:
            value: Any = json.loads(text)
        except (json.JSONDecodeError, ValueError):
            value = text
        key = "error" if m.is_error else "result"
        response = value if isinstance(value, dict) and not m.is_error else {key: value}
        out: dict[str, Any] = {"name": name, "response": response}
        if self.replay_call_ids and call_id:
            out["id"] = call_id
        return out

    def map_tool(self, tool: ToolSpec) -> dict[str, Any]:
        if tool.strict:
            raise ContractError(
                f"tool {tool.name!r}: strict=True cannot be honoured by provider kind "
                f"{self.kind!r}: Gemini's function declarations have no strict flag, so "
                "portal will not send the tool as if it were strict; drop strict for this "
                "target, or route the feature to a provider that enforces strict tools "
                "(openai, openai-responses, azure-openai, anthropic, bedrock, cohere)"
            )
        decl: dict[str, Any] = {"name": tool.name}
        if tool.description:
            decl["description"] = tool.description
        params = tool.parameters
        if params.get("properties") or params.get("$ref") or params.get("anyOf"):
            if self.json_schema_mode:
                decl["parametersJsonSchema"] = params
            else:
                decl["parameters"] = to_gemini_schema(params, f"tool {tool.name!r}: parameters")
        return decl

    def map_tool_choice(self, req: ChatRequest) -> dict[str, Any]:
        choice = req.tool_choice
        if choice == "auto":
            return {"mode": "AUTO"}
        if choice == "none":
            return {"mode": "NONE"}
        if choice == "required":
            return {"mode": "ANY"}
        if not any(t.name == choice for t in req.tools):
            known = ", ".join(t.name for t in req.tools) or "none"
            raise ContractError(
                f"tool_choice {choice!r}: no tool of that name in the request (tools: {known})"
            )
        return {"mode": "ANY", "allowedFunctionNames": [choice]}

    def map_output(self, req: ChatRequest) -> dict[str, Any]:
        assert req.output is not None
        if self.json_schema_mode:
            return {"responseMimeType": "application/json", "responseJsonSchema": req.output.schema}
        schema = to_gemini_schema(req.output.schema, f"output {req.output.name!r}")
        return {"responseMimeType": "application/json", "responseSchema": schema}

    # -- tool call ids and thought signatures ----------------------------------------------
    @staticmethod
    def synthesize_id(response_id: str | None, index: int, name: str, args: Any) -> str:
        """A stable id for a call Gemini returned without one: same reply, same id; the
        ``call_`` + hex form is accepted by every other vendor's id rules."""
        raw = json.dumps([response_id or "", index, name, args], sort_keys=True, default=str)
        return "call_" + hashlib.sha256(raw.encode()).hexdigest()[:24]

    def parse_parts(
        self,
        parts: Any,
        response_id: str | None,
        first_index: int,
        model: str,
        unknown: list[Any] | None = None,
        thoughts: ReasoningBlocks | None = None,
    ) -> tuple[list[str], list[ToolCall]]:
        """(texts, calls) of a candidate's parts; the text of thought parts goes to
        ``thoughts`` when given (never to the texts); parts with neither text nor a function
        call (other than bare metadata) are appended, as sent, to ``unknown`` when given."""
        texts: list[str] = []
        calls: list[ToolCall] = []
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict):
                continue
            has_text = isinstance(part.get("text"), str)
            if has_text and part.get("thought"):
                if thoughts is not None:
                    thoughts.add(part["text"])
            elif has_text:
                texts.append(part["text"])
                if part["text"] and thoughts is not None:
                    thoughts.close()
            fc = part.get("functionCall")
            if not has_text and not isinstance(fc, dict):
                if not part.keys() <= _PART_METADATA:
                    if unknown is not None:
                        unknown.append(part)
                    if thoughts is not None:
                        thoughts.close()
                continue
            if isinstance(fc, dict):
                if thoughts is not None:
                    thoughts.close()
                name = str(fc.get("name") or "")
                args = fc.get("args") or {}
                if not isinstance(args, dict):
                    raise self.invalid(f"functionCall {name!r}: args must be an object", model)
                index = first_index + len(calls)
                call_id = str(fc.get("id") or self.synthesize_id(response_id, index, name, args))
                signature = part.get("thoughtSignature")
                data = (
                    {PROVIDER_DATA_KEY: {"thought_signature": signature}}
                    if isinstance(signature, str) and signature
                    else None
                )
                calls.append(ToolCall(call_id, name, args, provider_data=data))
        return texts, calls

    # -- response --------------------------------------------------------------------------
    def parse_chat(self, reply: WireReply, model: str) -> Response:
        try:
            data = reply.json()
        except ValueError as exc:
            raise self.invalid(f"reply is not JSON ({exc})", model) from None
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if not isinstance(data, dict):
            raise self.invalid("reply is not a JSON object", model)
        if "error" in data:
            raise self.error_from_body(data, model, reply.status)
        self.check_prompt_block(data, model)
        candidates = data.get("candidates")
        if (
            not isinstance(candidates, list)
            or not candidates
            or not isinstance(candidates[0], dict)
        ):
            raise self.invalid("reply has no candidates[0]", model)
        cand = candidates[0]
        response_id = data.get("responseId")
        content: dict[str, Any] = cand["content"] if isinstance(cand.get("content"), dict) else {}
        unknown: list[Any] = []
        thoughts = ReasoningBlocks()
        texts, calls = self.parse_parts(
            content.get("parts"), response_id, 0, model, unknown, thoughts
        )
        text = "".join(texts)
        raw = cand.get("finishReason")
        finish = self.finish_reason(raw, text, calls)
        if finish == "content_filter" and not text and not calls:
            raise ContentFiltered(
                f"Gemini stopped the reply: finishReason {raw}",
                provider=self.name,
                model=model,
                status=reply.status,
                request_id=response_id,
                code=str(raw),
            )
        return Response(
            text=text,
            tool_calls=calls,
            finish_reason=finish,  # type: ignore[arg-type]
            reasoning=thoughts.joined(),
            raw_finish_reason=raw,
            usage=self.parse_usage(data.get("usageMetadata")),
            model=data.get("modelVersion") or model,
            request_id=response_id or self.request_id(reply.headers),
            provider_details=self.details(cand, unknown),
        )

    @staticmethod
    def finish_reason(raw: Any, text: str, calls: list[ToolCall]) -> str:
        mapped = FINISH_REASON_MAP.get(str(raw)) if raw else None
        if mapped is None:
            mapped = "stop" if (text or calls) else "error"
        if mapped == "stop" and calls:
            mapped = "tool_calls"
        return mapped

    @staticmethod
    def details(cand: Mapping[str, Any], unknown: list[Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("safetyRatings", "citationMetadata", "groundingMetadata", "finishMessage"):
            if cand.get(key):
                out[key] = cand[key]
        for part in unknown or ():
            keep_unknown(out, part)
        return out

    def check_prompt_block(self, data: Mapping[str, Any], model: str) -> None:
        feedback = data.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            reason = feedback["blockReason"]
            raise ContentFiltered(
                f"Gemini blocked the prompt: blockReason {reason}",
                provider=self.name,
                model=model,
                code=str(reason),
                body=feedback,
            )

    @staticmethod
    def parse_usage(raw: Any) -> Usage:
        if not isinstance(raw, dict):
            return Usage()
        thoughts = int(raw.get("thoughtsTokenCount") or 0)
        return Usage(
            input_tokens=int(raw.get("promptTokenCount") or 0)
            + int(raw.get("toolUsePromptTokenCount") or 0),
            output_tokens=int(raw.get("candidatesTokenCount") or 0) + thoughts,
            cached_input_tokens=int(raw.get("cachedContentTokenCount") or 0),
            reasoning_tokens=thoughts,
        )

    def stream_parser(self, req: ChatRequest, model: str) -> StreamParser:
        return GeminiStreamParser(self, model)

    # -- errors ----------------------------------------------------------------------------
    def error_details(self, reply: WireReply) -> tuple[str, str | None]:
        try:
            data = reply.json()
        except (ValueError, UnicodeDecodeError):
            return super().error_details(reply)
        if isinstance(data, list) and data:
            data = data[0]
        err = data.get("error") if isinstance(data, dict) else None
        if not isinstance(err, dict):
            return super().error_details(reply)
        code = err.get("status")
        for detail in err.get("details") or []:
            # API_KEY_INVALID arrives as a 400 INVALID_ARGUMENT; the reason says what it is
            if isinstance(detail, dict) and detail.get("reason") == "API_KEY_INVALID":
                code = "API_KEY_INVALID"
        return str(err.get("message") or ""), (str(code) if code else None)

    def classify(self, status: int, code: str | None, message: str) -> type[ProviderError]:
        if code == "API_KEY_INVALID":
            return AuthenticationError
        if _TOKEN_LIMIT.search(message):
            return ContextTooLong
        if code in STATUS_MAP and status not in (400, 422):
            return STATUS_MAP[code]
        return error_class_for_status(status, code, message)

    def parse_error(self, reply: WireReply, model: str) -> ProviderError:
        error = super().parse_error(reply, model)
        if error.retry_after is None:
            error.retry_after = retry_delay(reply.body)
        return error

    def error_from_body(self, data: Any, model: str, status: int | None = None) -> ProviderError:
        """An error object inside a 200 body or a stream event, classified by its own
        ``code`` (the HTTP status) and ``status`` as the same HTTP error would be; without a
        code on the wire, by its ``status`` alone, and ``err.status`` stays None."""
        err = data.get("error") if isinstance(data, dict) else None
        code = err.get("code") if isinstance(err, dict) else None
        wire: int | None = code if isinstance(code, int) and 400 <= code <= 599 else None
        if wire is None and status is not None and status >= 400:
            wire = status
        error = self.parse_error(WireReply(wire or 500, {}, json.dumps(data).encode()), model)
        error.status = wire
        return error

    # -- embeddings ------------------------------------------------------------------------
    def embed_batch_limit(self, model: str) -> int | None:
        return _EMBED_BATCH_MAX  # the client's flow splits a larger embed into requests

    def build_embed(self, req: EmbedRequest, model: str) -> WireRequest:
        if len(req.inputs) > _EMBED_BATCH_MAX:  # only reached when called directly
            raise ContractError(
                f"inputs: Gemini embeds at most {_EMBED_BATCH_MAX} texts per request, got "
                f"{len(req.inputs)}; split the batch"
            )
        name = model if model.startswith("models/") else f"models/{model}"
        task = self.task_type(req.input_type)
        requests = []
        for text in req.inputs:
            item: dict[str, Any] = {"model": name, "content": {"parts": [{"text": text}]}}
            if task:
                item["taskType"] = task
            if req.dimensions is not None:
                item["outputDimensionality"] = req.dimensions
            requests.append(item)
        body: dict[str, Any] = {"requests": requests}
        body.update(req.options_for(self.kind))
        return self.json_request(
            self.model_url(model) + ":batchEmbedContents", body, self.auth_headers()
        )

    @staticmethod
    def task_type(input_type: str | None) -> str | None:
        if not input_type:
            return None
        return _TASK_TYPES.get(input_type, input_type.upper())

    def parse_embed(self, reply: WireReply, model: str) -> EmbedResponse:
        try:
            data = reply.json()
            vectors = [list(map(float, e["values"])) for e in data["embeddings"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise self.invalid(f"embedding reply not understood ({exc})", model) from None
        # batchEmbedContents reports no token usage; metering estimates it
        return EmbedResponse(vectors, Usage(), model)


class _CachePlan(NamedTuple):
    """One explicit cache: its key, ``cachedContents.create`` body, lifetime, and how many
    of the request's ``contents`` it holds."""

    key: str
    body: dict[str, Any]
    ttl_s: float
    cached_contents: int


#: seconds an explicit cache lives, per marker lifetime; and without one (the API's default)
_LIFETIME_S = {"5m": 300.0, "1h": 3600.0}
_DEFAULT_CACHE_TTL_S = 3600.0
#: how long a creation in flight keeps other calls from creating the same cache (seconds)
_CREATING_S = 30.0


class VertexAdapter(GeminiAdapter):
    """Gemini on Vertex AI. Settings: ``options.project`` (else GOOGLE_CLOUD_PROJECT or the
    default credentials' project), ``options.location`` (default ``us-central1``; ``global``
    uses the global endpoint). Auth: ``api_key`` is taken as a pre-minted OAuth access token;
    without it, google-auth's application default credentials (extra ``vertex``) mint one.
    Refreshing that token is the one network call an adapter makes, once per token lifetime."""

    kind: ClassVar[str] = "vertex"
    option_names: ClassVar[frozenset[str] | None] = frozenset(
        {"json_schema", "project", "location", "explicit_cache"}
    )
    default_base_url: ClassVar[str | None] = None
    api_key_env: ClassVar[str | None] = None
    api_version: ClassVar[str] = "v1"
    replay_call_ids: ClassVar[bool] = False
    capabilities: ClassVar[Capabilities] = Capabilities(
        strict_tools=False,
        structured_output="response_schema",
        schema_dialect="openapi-3.0-subset",
        embed=True,
        max_tools=512,
        notes=(
            *GeminiAdapter.capabilities.notes,
            "embeddings through :predict (text-embedding models)",
        ),
    )
    scopes: ClassVar[tuple[str, ...]] = ("https://www.googleapis.com/auth/cloud-platform",)

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self._credentials: Any = None
        self._adc_project: str | None = None
        self._lock = threading.Lock()  # one token refresh at a time

    @property
    def location(self) -> str:
        return str(self.settings.options.get("location") or self.settings.region or "us-central1")

    def project(self) -> str:
        import os

        project = (
            self.settings.options.get("project")
            or os.environ.get("GOOGLE_CLOUD_PROJECT")
            or self._adc_project
        )
        if not project and self.settings.api_key is None:
            self._load_credentials()
            project = self._adc_project
        if not project:
            raise ConfigError(
                f"provider {self.name!r} (vertex): no project; set options.project in the config "
                "or GOOGLE_CLOUD_PROJECT"
            )
        return str(project)

    def location_path(self) -> str:
        """``projects/{project}/locations/{location}``: the parent of models and caches."""
        return f"projects/{self.project()}/locations/{self.location}"

    def host(self) -> str:
        loc = self.location
        return self.base_url or (
            "https://aiplatform.googleapis.com"
            if loc == "global"
            else f"https://{loc}-aiplatform.googleapis.com"
        )

    def model_url(self, model: str) -> str:
        name = model if model.startswith("publishers/") else f"publishers/google/models/{model}"
        return f"{self.host()}/{self.api_version}/{self.location_path()}/{name}"

    def model_name(self, model: str) -> str:
        """``projects/{p}/locations/{l}/publishers/google/models/{model}``: the only form
        a Vertex AI ``cachedContents`` body takes."""
        if model.startswith("projects/"):
            return model
        name = model if model.startswith("publishers/") else f"publishers/google/models/{model}"
        return f"{self.location_path()}/{name}"

    def cache_create_url(self) -> str:
        """``projects.locations.cachedContents.create``: the cache lives in the location
        the calls go to."""
        return f"{self.host()}/{self.api_version}/{self.location_path()}/cachedContents"

    @staticmethod
    def cache_name_ok(name: str) -> bool:
        return name.startswith("projects/") and "/cachedContents/" in name

    def auth_headers(self) -> dict[str, str]:
        key = self.settings.api_key
        if key:
            return {"authorization": f"Bearer {key.get()}"}
        return {"authorization": f"Bearer {self._access_token()}"}

    def _load_credentials(self) -> Any:
        if self._credentials is None:
            try:
                import google.auth  # type: ignore[import-not-found, unused-ignore]
                import google.auth.exceptions  # type: ignore[import-not-found, unused-ignore]
            except ImportError as exc:
                from portal._extras import install_hint

                raise ConfigError(
                    f"provider {self.name!r} (vertex): google-auth is not installed; "
                    f"{install_hint('vertex')}, or set api_key to an access token"
                ) from exc
            try:
                creds, project = google.auth.default(scopes=list(self.scopes))
            except google.auth.exceptions.DefaultCredentialsError as exc:
                raise ConfigError(
                    f"provider {self.name!r} (vertex): no Google application default "
                    f"credentials ({type(exc).__name__}); run `gcloud auth application-default "
                    "login` or set GOOGLE_APPLICATION_CREDENTIALS"
                ) from None
            self._credentials = creds
            self._adc_project = project
        return self._credentials

    def _access_token(self) -> str:
        creds = self._load_credentials()
        with self._lock:
            if not getattr(creds, "valid", False) or not getattr(creds, "token", None):
                import google.auth.transport.requests  # type: ignore[import-not-found, unused-ignore]

                creds.refresh(google.auth.transport.requests.Request())
            return str(creds.token)

    # -- embeddings through :predict --------------------------------------------------------
    def build_embed(self, req: EmbedRequest, model: str) -> WireRequest:
        task = self.task_type(req.input_type)
        instances = []
        for text in req.inputs:
            item: dict[str, Any] = {"content": text}
            if task:
                item["task_type"] = task
            instances.append(item)
        body: dict[str, Any] = {"instances": instances}
        if req.dimensions is not None:
            body["parameters"] = {"outputDimensionality": req.dimensions}
        body.update(req.options_for(self.kind))
        return self.json_request(self.model_url(model) + ":predict", body, self.auth_headers())

    def parse_embed(self, reply: WireReply, model: str) -> EmbedResponse:
        try:
            data = reply.json()
            preds = data["predictions"]
            vectors = [list(map(float, p["embeddings"]["values"])) for p in preds]
            tokens = sum(
                int((p["embeddings"].get("statistics") or {}).get("token_count") or 0)
                for p in preds
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise self.invalid(f"embedding reply not understood ({exc})", model) from None
        return EmbedResponse(vectors, Usage(input_tokens=tokens), model)


def thought_signature(call: ToolCall) -> str | None:
    """The Gemini thought signature a call carries in ``provider_data``, if any."""
    data = (call.provider_data or {}).get(PROVIDER_DATA_KEY)
    signature = data.get("thought_signature") if isinstance(data, Mapping) else None
    return signature if isinstance(signature, str) and signature else None


def retry_delay(body: bytes) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail (``"retryDelay": "30s"``)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(data, list) and data:
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    details = err.get("details") if isinstance(err, dict) else None
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict):
            continue
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            raw = str(detail.get("retryDelay") or "")
            try:
                return max(0.0, float(raw.rstrip("s"))) if raw.endswith("s") else None
            except ValueError:
                return None
    return None


class GeminiStreamParser(SSEStreamParser):
    """``streamGenerateContent?alt=sse``: every event is a whole GenerateContentResponse
    chunk. Text parts are deltas (thought parts too: ``reasoning`` events); function calls
    arrive whole; usageMetadata is cumulative (the last one wins); the reply is complete once a
    chunk carries ``finishReason``."""

    def __init__(self, adapter: GeminiAdapter, model: str) -> None:
        self.adapter = adapter
        self.model = model
        self.sse = adapter.sse_decoder()
        self.text: list[str] = []
        self.thoughts = ReasoningBlocks()
        self.calls: list[ToolCall] = []
        self.usage: Usage | None = None
        self.finish_raw: str | None = None
        self.response_id: str | None = None
        self.model_version: str | None = None
        self.details: dict[str, Any] = {}

    def on_event(self, sse_event: str, data: str, events: list[StreamEvent]) -> None:
        if not data.strip():
            return
        try:
            obj = json.loads(data)
        except json.JSONDecodeError:
            raise self.adapter.invalid("stream chunk is not JSON", self.model) from None
        if not isinstance(obj, dict):
            raise self.adapter.invalid("stream chunk is not a JSON object", self.model)
        if "error" in obj:
            raise self.adapter.error_from_body(obj, self.model)
        self.adapter.check_prompt_block(obj, self.model)
        self.response_id = obj.get("responseId") or self.response_id
        self.model_version = obj.get("modelVersion") or self.model_version
        if isinstance(obj.get("usageMetadata"), dict):
            self.usage = self.adapter.parse_usage(obj["usageMetadata"])
        candidates = obj.get("candidates") or []
        cand = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
        content: dict[str, Any] = cand["content"] if isinstance(cand.get("content"), dict) else {}
        unknown: list[Any] = []
        seen = len(self.thoughts.pieces)
        texts, calls = self.adapter.parse_parts(
            content.get("parts"),
            self.response_id,
            len(self.calls),
            self.model,
            unknown,
            self.thoughts,
        )
        for part in unknown:
            self.keep_unknown_event(part)
        for piece in self.thoughts.pieces[seen:]:
            events.append(StreamEvent("reasoning", text=piece))
        for text in texts:
            if text:
                self.text.append(text)
                events.append(StreamEvent("text", text=text))
        for call in calls:
            self.calls.append(call)
            events.append(StreamEvent("tool_call", tool_call=call))
        self.details.update(self.adapter.details(cand))
        if cand.get("finishReason"):
            self.finish_raw = str(cand["finishReason"])
            if self.usage is not None:
                events.append(StreamEvent("usage", usage=self.usage))

    def finish(self) -> Response:
        self.drain()
        text = "".join(self.text)
        if self.finish_raw is None:
            raise self.adapter.interrupted(
                "stream ended before the reply was complete (no chunk carried finishReason)",
                self.model,
                text,
                self.usage,
            )
        finish = self.adapter.finish_reason(self.finish_raw, text, self.calls)
        if finish == "content_filter" and not text and not self.calls:
            raise ContentFiltered(
                f"Gemini stopped the reply: finishReason {self.finish_raw}",
                provider=self.adapter.name,
                model=self.model,
                request_id=self.response_id,
                code=self.finish_raw,
            )
        return Response(
            text=text,
            tool_calls=list(self.calls),
            finish_reason=finish,  # type: ignore[arg-type]
            reasoning=self.thoughts.joined(),
            raw_finish_reason=self.finish_raw,
            usage=self.usage or Usage(),
            model=self.model_version or self.model,
            request_id=self.response_id,
            provider_details=self.unknown_details(self.details),
        )
