"""Amazon Bedrock Runtime: Converse (``POST /model/{modelId}/converse``), ConverseStream
(``POST /model/{modelId}/converse-stream``) and InvokeModel for embeddings
(``POST /model/{modelId}/invoke``).

Wire format: the bedrock-runtime service model shipped with botocore
(``botocore/data/bedrock-runtime/2023-09-30/service-2.json``: ``ConverseRequest``,
``ConverseResponse``, ``ConverseStreamOutput``, ``TokenUsage``, ``StopReason``, the exception
shapes and their HTTP codes), the API reference pages
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html and
``API_runtime_ConverseStream.html``, the event-stream encoding
https://docs.aws.amazon.com/AmazonS3/latest/API/RESTSelectObjectAppendix.html, and the model
parameter pages for Titan Text Embeddings (v1/v2) and Cohere Embed.

SigV4 signing and event-stream decoding use botocore (the optional extra ``bedrock``); it is
imported here only when needed, so ``import portal`` never loads it.

Settings used (``ProviderSettings.options``): ``region_name`` (else ``settings.region`` when it
is an AWS region name, else the region in ``base_url``, else ``AWS_REGION`` /
``AWS_DEFAULT_REGION``); ``access_key_id``, ``secret_access_key``, ``session_token`` (secrets;
else botocore's default credential chain, optionally with ``profile``). A configured
``api_key`` is a Bedrock API key, sent as a bearer token instead of SigV4.

Translation choices:

- Bedrock takes images as bytes only: URL images are refused with `ContractError`;
- ``tool_choice="none"`` has no Converse equivalent: the tools are left out of the request
  (refused when the history holds tool calls, which Bedrock only accepts with a toolConfig);
- structured output is a forced tool named after the output, as for the ``anthropic`` kind;
  its input becomes `Response.text` (in `finalize`, or directly when streaming);
- ``seed`` is not part of ``inferenceConfig`` and is not sent; model-specific fields go in
  ``provider_options={"bedrock": {"additionalModelRequestFields": {...}}}`` (merged verbatim);
- Titan embedding models take one input per request and Cohere Embed 96 (`embed_batch_limit`):
  a larger ``embed`` is sent as several requests, in input order, as one attempt.

Finish reasons: see `FINISH_REASON_MAP`; an unknown ``stopReason`` becomes "stop" when the reply
carries text or tool calls, "error" when it is empty.

Content: ``text`` blocks are the answer, ``toolUse`` blocks the calls, ``reasoningContent``
goes with the calls (below); any other block (``citationsContent``, ``image``, a member added
later) is kept as sent in ``provider_details["unknown_content"]``. A stream keeps unknown
events, the start and deltas of an unknown block, and unknown delta members in
``provider_details["unknown_events"]`` (capped at `MAX_UNKNOWN_EVENTS`), each as
``{event type: payload}``, the shape AWS SDKs give ConverseStream events.

Reasoning: with reasoning enabled (e.g. Claude's ``thinking`` in
``additionalModelRequestFields``), the assistant turn that made tool calls must be sent back
with its ``reasoningContent`` blocks, text and signature unmodified (API reference,
``ReasoningTextBlock.signature``; Claude refuses a tool loop's next request without them). So
each reasoning block (``reasoningText`` with its ``signature``, or ``redactedContent`` as given;
a stream's deltas reassembled per ``contentBlockIndex``) is kept, verbatim and in order, on the
tool call that follows it: ``ToolCall.provider_data = {"bedrock": {"reasoning": [<the
reasoningContent value>, ...]}}``, the blocks since the previous ``toolUse`` on the next one.
It travels with the conversation (as Gemini's thought signatures do), and on replay the first
call's blocks open the assistant content (the turn must begin with its reasoning) while a later
call's blocks go just before its ``toolUse``. Reasoning after the last call, or in a reply
without calls, is not needed for replay and is not attached. The visible reasoning text of a
reply (blocks joined by a blank line, no signatures) is ``Response.reasoning``; a stream emits
each piece as a ``reasoning`` event.
Other vendors' ``provider_data`` is never sent.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from portal.contracts.cache import CacheHint, cache_ttl, check_breakpoints, marked
from portal.contracts.messages import ImagePart, Message, TextPart, ToolCall
from portal.contracts.request import ChatRequest, EmbedRequest
from portal.contracts.responses import EmbedResponse, Response, StreamEvent, Usage
from portal.errors import (
    AuthenticationError,
    BadRequest,
    ConfigError,
    ContractError,
    NotFound,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from portal.providers.adapter import Adapter, Capabilities
from portal.providers.anthropic import (
    finalize_forced_tool,
    output_tool_name,
    safe_tool_id,
)
from portal.providers.error_replies import error_body, error_class_for_status, parse_retry_after
from portal.providers.reasoning import carried, carry, join_reasoning, replayed_turn
from portal.providers.schema_transform import close_objects
from portal.providers.settings import ProviderSettings
from portal.providers.streaming import StreamParser, ToolCallAssembler, forced_tool_text
from portal.providers.unknown import keep_unknown
from portal.secret import Secret
from portal.wire import WireReply, WireRequest

__all__ = ["FINISH_REASON_MAP", "BedrockAdapter", "BedrockStreamParser"]

SIGNING_NAME = "bedrock"

FINISH_REASON_MAP: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "malformed_model_output": "error",
    "malformed_tool_use": "error",
}

#: exception shape name (``x-amzn-errortype`` / ``:exception-type``) -> class
ERROR_TYPE_MAP: dict[str, type[ProviderError]] = {
    "ThrottlingException": RateLimited,
    "ServiceQuotaExceededException": RateLimited,
    "ModelNotReadyException": Overloaded,
    "ServiceUnavailableException": Overloaded,
    "ModelTimeoutException": ProviderTimeout,
    "ValidationException": BadRequest,
    "AccessDeniedException": AuthenticationError,
    "UnrecognizedClientException": AuthenticationError,
    "ExpiredTokenException": AuthenticationError,
    "InvalidSignatureException": AuthenticationError,
    "ResourceNotFoundException": NotFound,
    "InternalServerException": ServerError,
    "ModelErrorException": ServerError,
    "ModelStreamErrorException": ServerError,
}

#: content-block member holding reasoning: kept on the next tool call, not in the answer
REASONING_BLOCK = "reasoningContent"
#: the ``ToolCall.provider_data`` namespace this adapter reads and writes
PROVIDER_DATA_KEY = "bedrock"
#: ConverseStream events that need no action
IGNORED_EVENTS = frozenset({"messageStart", "contentBlockStop"})

_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_AWS_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+$")
_HOST_REGION = re.compile(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com")
_CONTEXT_MARKERS = ("too long", "too many input tokens", "context window", "context length")


def _botocore() -> Any:
    """botocore's signing and event-stream modules, or a ConfigError saying how to get them."""
    try:
        import botocore.auth  # type: ignore[import-untyped]
        import botocore.awsrequest  # type: ignore[import-untyped]
        import botocore.credentials  # type: ignore[import-untyped]
        import botocore.eventstream  # type: ignore[import-untyped]
        import botocore.exceptions  # type: ignore[import-untyped]
        import botocore.session  # type: ignore[import-untyped]
    except ImportError as exc:
        from portal._extras import install_hint

        raise ConfigError(
            "provider kind 'bedrock' needs botocore for AWS request signing and event streams; "
            f"{install_hint('bedrock')}"
        ) from exc
    return botocore


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    return value.get() if isinstance(value, Secret) else str(value)


#: Bedrock documents at most 4 cache checkpoints per request (Claude models)
MAX_CACHE_POINTS = 4


def cache_point(hint: CacheHint) -> dict[str, Any]:
    """A ``cachePoint`` content block: type ``default``, with ``ttl`` (``5m`` or ``1h``, as
    the CachePointBlock reference lists) when the marker asked for a lifetime."""
    point: dict[str, Any] = {"type": "default"}
    ttl = cache_ttl(hint)
    if ttl is not None:
        point["ttl"] = ttl
    return {"cachePoint": point}


def tools_with_cache_points(tools: list[dict[str, Any]], req: ChatRequest) -> list[dict[str, Any]]:
    """The tool list with a ``cachePoint`` after each marked tool."""
    hints = {t.name: t.cache for t in req.tools if t.cache}
    out: list[dict[str, Any]] = []
    for entry in tools:
        out.append(entry)
        hint = hints.get(entry.get("toolSpec", {}).get("name"))
        if hint:
            out.append(cache_point(hint))
    return out


def _empty_marked(i: int) -> ContractError:
    return ContractError(
        f"messages[{i}].cache: the message has no content to put a cachePoint after; "
        "mark a message with content"
    )


def check_cache_points(body: dict[str, Any], provider: str) -> None:
    """At most 4 checkpoints, 1-hour ones first, in reading order (tools, system, messages)."""
    blocks = list((body.get("toolConfig") or {}).get("tools", ()))
    blocks += body.get("system", [])
    for turn in body.get("messages", ()):
        blocks += turn["content"]
    ttls = [b["cachePoint"].get("ttl") for b in blocks if "cachePoint" in b]
    check_breakpoints(ttls, f"provider {provider!r} (Bedrock)", MAX_CACHE_POINTS)


class BedrockAdapter(Adapter):
    """Documented Converse limits used here: tool names ``^[a-zA-Z0-9_-]{1,64}$``; images
    png/jpeg/gif/webp as bytes only (no URLs), at most 20 per request, 3.75 MB each;
    toolChoice ``any``/``tool`` only for Anthropic Claude and Mistral Large models (others
    answer ValidationException); no ``none`` tool choice."""

    kind: ClassVar[str] = "bedrock"
    cache_ttls: ClassVar[tuple[str, ...]] = ("5m", "1h")
    option_names: ClassVar[frozenset[str] | None] = frozenset(
        {"access_key_id", "secret_access_key", "session_token", "profile", "region_name"}
    )
    default_base_url: ClassVar[str | None] = None  # https://bedrock-runtime.{region}.amazonaws.com
    capabilities: ClassVar[Capabilities] = Capabilities(
        structured_output="tool",
        schema_dialect="json-schema",
        embed=True,
        notes=(
            "images must be inline bytes: URL images are refused",
            (
                "tool_choice 'none' is sent as a request without tools (refused when the "
                "history holds tool calls)"
            ),
            "tool_choice 'required' / a named tool only work for Claude and Mistral Large models",
            "Titan embedding models take one input per request (Cohere Embed 96): a larger "
            "embed is sent as several requests, in order, as one attempt",
            "seed is not supported by Converse and is not sent",
        ),
    )

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self._credentials: Any = None
        if not self.base_url:
            self.base_url = f"https://bedrock-runtime.{self.region()}.amazonaws.com"

    # -- endpoint and auth -----------------------------------------------------------------
    def region(self) -> str:
        opts = self.settings.options
        if opts.get("region_name"):
            return str(opts["region_name"])
        if self.settings.region and _AWS_REGION.match(self.settings.region):
            return self.settings.region
        if self.settings.base_url:
            found = _HOST_REGION.search(self.settings.base_url)
            if found:
                return found.group(1)
        env = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if env:
            return env
        raise ConfigError(
            f"provider {self.name!r} (kind 'bedrock'): no AWS region; set "
            'options.region_name (e.g. region_name = "us-east-1") or AWS_REGION'
        )

    def model_url(self, model: str, action: str) -> str:
        """Model ids and ARNs contain ':' and '/': they travel percent-encoded."""
        return f"{self.base_url}/model/{quote(model, safe='')}/{action}"

    def credentials(self) -> Any:
        """Frozen AWS credentials: from options, else botocore's default chain (env, shared
        files, SSO, container and instance roles), resolved once and refreshed by botocore."""
        bc = _botocore()
        opts = self.settings.options
        key_id = _secret(opts.get("access_key_id"))
        secret = _secret(opts.get("secret_access_key"))
        if key_id or secret:
            if not (key_id and secret):
                raise ConfigError(
                    f"provider {self.name!r}: give both options.access_key_id and "
                    "options.secret_access_key (or neither, to use the AWS credential chain)"
                )
            return bc.credentials.Credentials(key_id, secret, _secret(opts.get("session_token")))
        if self._credentials is None:
            try:
                session = bc.session.Session(profile=opts.get("profile"))
                self._credentials = session.get_credentials()
            except bc.exceptions.BotoCoreError as exc:
                raise ConfigError(
                    f"provider {self.name!r}: the AWS credential chain failed ({exc}); check "
                    "options.profile and your AWS configuration"
                ) from None
        if self._credentials is None:
            raise AuthenticationError(
                f"no AWS credentials for provider {self.name!r}: set options.access_key_id and "
                "options.secret_access_key, or configure the AWS credential chain "
                "(AWS_ACCESS_KEY_ID, ~/.aws/credentials, an instance role...)",
                provider=self.name,
            )
        return self._credentials.get_frozen_credentials()

    def sign(self, request: WireRequest) -> WireRequest:
        """Add SigV4 headers (or the bearer token of a Bedrock API key) to a built request."""
        if self.settings.api_key:
            request.headers["authorization"] = f"Bearer {self.settings.api_key.get()}"
            return request
        bc = _botocore()
        aws = bc.awsrequest.AWSRequest(
            method=request.method, url=request.url, data=request.body, headers=request.headers
        )
        bc.auth.SigV4Auth(self.credentials(), SIGNING_NAME, self.region()).add_auth(aws)
        request.headers = {k.lower(): v for k, v in aws.headers.items()}
        return request

    # -- request ---------------------------------------------------------------------------
    def build_chat(self, req: ChatRequest, model: str) -> WireRequest:
        action = "converse-stream" if req.stream else "converse"
        headers = {"accept": "application/vnd.amazon.eventstream"} if req.stream else None
        wire = self.json_request(self.model_url(model, action), self.chat_body(req), headers)
        return self.sign(wire)

    def chat_body(self, req: ChatRequest) -> dict[str, Any]:
        system, messages = self.map_messages(req.messages)
        body: dict[str, Any] = {"messages": messages}
        if system:
            body["system"] = system
        config: dict[str, Any] = {}
        if req.max_tokens is not None:
            config["maxTokens"] = req.max_tokens
        if req.temperature is not None:
            config["temperature"] = req.temperature
        if req.top_p is not None:
            config["topP"] = req.top_p
        if req.stop:
            config["stopSequences"] = req.stop
        if config:
            body["inferenceConfig"] = config
        tool_config = self.map_tool_config(req, messages)
        if tool_config is not None:
            if any(t.cache for t in req.tools):
                tool_config["tools"] = tools_with_cache_points(tool_config["tools"], req)
            body["toolConfig"] = tool_config
        body.update(req.options_for(self.kind))
        if marked(req):
            check_cache_points(body, self.name)
        return body

    def map_messages(
        self, messages: list[Message]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        system: list[dict[str, Any]] = []
        turns: list[dict[str, Any]] = []
        for i, m in enumerate(messages):
            if m.role == "system":
                if m.text:
                    system.append({"text": m.text})
                    if m.cache:
                        system.append(cache_point(m.cache))
                elif m.cache:
                    raise _empty_marked(i)
                continue
            role = "assistant" if m.role == "assistant" else "user"
            blocks = self.map_content(m, f"messages[{i}]")
            if m.cache:
                if not blocks:
                    raise _empty_marked(i)
                blocks.append(cache_point(m.cache))
            if not blocks:
                continue
            if turns and turns[-1]["role"] == role:
                turns[-1]["content"].extend(blocks)
            else:
                turns.append({"role": role, "content": blocks})
        return system, turns

    def map_content(self, m: Message, where: str) -> list[dict[str, Any]]:
        if m.role == "tool":
            result: dict[str, Any] = {"toolUseId": safe_tool_id(m.tool_call_id or "", "tooluse_")}
            if isinstance(m.content, list):
                result["content"] = [self.map_part(p, where) for p in m.content]
            else:
                result["content"] = [self.map_tool_output(m.content or "")]
            if m.is_error:
                result["status"] = "error"
            return [{"toolResult": result}]
        blocks = [
            self.map_part(p, where)
            for p in m.parts
            if not (isinstance(p, TextPart) and not p.text.strip())
        ]
        if m.role == "assistant" and m.tool_calls:
            return replayed_turn(blocks, m.tool_calls, _replayed_reasoning, self.map_tool_call)
        return blocks

    @staticmethod
    def map_tool_output(text: str) -> dict[str, Any]:
        """A JSON object result travels as a ``json`` block, anything else as ``text``."""
        try:
            value = json.loads(text)
        except ValueError:
            return {"text": text}
        return {"json": value} if isinstance(value, dict) else {"text": text}

    def map_part(self, part: TextPart | ImagePart, where: str) -> dict[str, Any]:
        if isinstance(part, TextPart):
            return {"text": part.text}
        if part.url is not None:
            raise ContractError(
                f"{where}: Bedrock Converse does not take image URLs ({part.url[:60]!r}); "
                "download the image and pass it inline, e.g. ImagePart(data=<base64>, "
                "media_type='image/png')"
            )
        fmt = _IMAGE_FORMATS.get((part.media_type or "").lower())
        if fmt is None:
            raise ContractError(
                f"{where}: Bedrock takes png, jpeg, gif or webp images, got {part.media_type!r}"
            )
        return {"image": {"format": fmt, "source": {"bytes": part.data}}}

    def map_tool_call(self, call: ToolCall) -> dict[str, Any]:
        return {
            "toolUse": {
                "toolUseId": safe_tool_id(call.id, "tooluse_"),
                "name": call.name,
                "input": call.arguments,
            }
        }

    def map_tool(self, tool: Any) -> dict[str, Any]:
        """A ``toolSpec``; a strict tool sets ``ToolSpecification.strict`` (structured-output
        enforcement of the tool's input, on the models Bedrock supports it for)."""
        params = tool.parameters
        if tool.strict:
            params = close_objects(params, f"tool {tool.name!r}: parameters", "Bedrock")
        spec: dict[str, Any] = {"name": tool.name, "inputSchema": {"json": params}}
        if tool.description:
            spec["description"] = tool.description
        if tool.strict:
            spec["strict"] = True
        return {"toolSpec": spec}

    def map_tool_config(
        self, req: ChatRequest, messages: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        out_name = output_tool_name(req)
        choice = req.tool_choice
        tools = [self.map_tool(t) for t in req.tools]
        if out_name is None and (not tools or choice == "none"):
            if tools and _has_tool_blocks(messages):
                raise ContractError(
                    "tool_choice='none' cannot be expressed on Bedrock Converse when the "
                    "conversation holds tool calls (Bedrock then requires the tools); use "
                    "tool_choice='auto'"
                )
            return None
        if out_name is not None:
            assert req.output is not None
            if choice == "none":
                tools = []
            tools.append(
                {
                    "toolSpec": {
                        "name": out_name,
                        "description": (
                            "Give the final answer as the input of this tool; it must match "
                            f"the {req.output.name} schema."
                        ),
                        "inputSchema": {"json": req.output.schema},
                    }
                }
            )
            if len(tools) > 1 and choice in (None, "auto", "required"):
                return {"tools": tools, "toolChoice": {"any": {}}}
            if choice in (None, "auto", "required", "none"):
                return {"tools": tools, "toolChoice": {"tool": {"name": out_name}}}
            return {"tools": tools, "toolChoice": {"tool": {"name": choice}}}
        config: dict[str, Any] = {"tools": tools}
        if choice == "auto":
            config["toolChoice"] = {"auto": {}}
        elif choice == "required":
            config["toolChoice"] = {"any": {}}
        elif choice is not None:
            config["toolChoice"] = {"tool": {"name": choice}}
        return config

    # -- response --------------------------------------------------------------------------
    def parse_chat(self, reply: WireReply, model: str) -> Response:
        try:
            data = reply.json()
        except ValueError as exc:
            raise self.invalid(f"reply is not JSON ({exc})", model) from None
        if not isinstance(data, dict):
            raise self.invalid("reply is not a JSON object", model)
        message = (data.get("output") or {}).get("message")
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            raise self.invalid("reply has no output.message.content", model)
        texts: list[str] = []
        calls: list[ToolCall] = []
        details: dict[str, Any] = {}
        reasoning: list[dict[str, Any]] = []  # blocks since the previous toolUse
        thoughts: list[str] = []
        for block in message["content"]:
            if not isinstance(block, dict):
                continue
            if "text" in block:
                if not isinstance(block["text"], str):  # null is not an empty answer
                    raise self.invalid("a content block's text is not a string", model)
                texts.append(block["text"])
            elif isinstance(block.get("toolUse"), dict):
                use = block["toolUse"]
                args = use.get("input")
                if not isinstance(args, dict):
                    raise self.invalid(
                        f"toolUse {use.get('name')!r}: input must be a JSON object", model
                    )
                name = str(use.get("name") or "")
                calls.append(ToolCall(str(use.get("toolUseId") or ""), name, args))
                carry(calls[-1], PROVIDER_DATA_KEY, "reasoning", reasoning)
                reasoning = []
            elif REASONING_BLOCK in block:
                value = block[REASONING_BLOCK]
                if isinstance(value, dict):
                    reasoning.append(value)
                    thoughts.append(reasoning_text(value))
            else:
                keep_unknown(details, block)
        raw = data.get("stopReason")
        text = "".join(texts)
        latency = (data.get("metrics") or {}).get("latencyMs")
        if latency is not None:
            details["latency_ms"] = latency
        return Response(
            text=text,
            tool_calls=calls,
            reasoning=join_reasoning(thoughts),
            finish_reason=normalize_finish(raw, bool(text or calls), bool(calls)),  # type: ignore[arg-type]
            raw_finish_reason=raw,
            usage=self._usage(data.get("usage"), model),
            model=None,
            request_id=self.request_id(reply.headers),
            provider_details=details,
        )

    @staticmethod
    def parse_usage(raw: Any) -> Usage:
        """Claude on Bedrock reports ``inputTokens`` without cache reads and writes (their sum
        with ``outputTokens`` and the cache counts is ``totalTokens``); portal's input count
        includes them. When ``totalTokens`` shows the cache is already inside ``inputTokens``,
        nothing is added, so no token is counted twice."""
        if not isinstance(raw, dict):
            return Usage()
        fresh = int(raw.get("inputTokens") or 0)
        output = int(raw.get("outputTokens") or 0)
        reads = int(raw.get("cacheReadInputTokens") or 0)
        writes = int(raw.get("cacheWriteInputTokens") or 0)
        total = raw.get("totalTokens")
        cache_inside = total is not None and int(total) == fresh + output and (reads or writes)
        return Usage(
            input_tokens=fresh if cache_inside else fresh + reads + writes,
            output_tokens=output,
            cached_input_tokens=reads,
            cache_write_tokens=writes,
        )

    def _usage(self, raw: Any, model: str) -> Usage:
        try:
            return self.parse_usage(raw)
        except (TypeError, ValueError) as exc:
            raise self.invalid(f"usage not understood ({exc})", model) from None

    def stream_parser(self, req: ChatRequest, model: str) -> StreamParser:
        return BedrockStreamParser(self, model, output_tool_name(req))

    def finalize(self, req: ChatRequest, response: Response) -> Response:
        return finalize_forced_tool(req, response)

    # -- errors ----------------------------------------------------------------------------
    def request_id(self, headers: Mapping[str, str]) -> str | None:
        return headers.get("x-amzn-requestid") or headers.get("x-amz-request-id")

    def error_details(self, reply: WireReply) -> tuple[str, str | None]:
        message, code = super().error_details(reply)
        try:
            data = reply.json()
        except (ValueError, UnicodeDecodeError):
            data = None
        if isinstance(data, dict):
            message = str(data.get("message") or data.get("Message") or message)
            code = code or (str(data["__type"]) if data.get("__type") else None)
        header = reply.headers.get("x-amzn-errortype")
        if header:
            code = header
        return message, _error_type(code)

    def classify(self, status: int, code: str | None, message: str) -> type[ProviderError]:
        cls = ERROR_TYPE_MAP.get(code or "")
        if cls is BadRequest or (cls is None and status == 400):
            lowered = message.lower()
            if any(m in lowered for m in _CONTEXT_MARKERS):
                from portal.errors import ContextTooLong

                return ContextTooLong
            return error_class_for_status(400, code, message)
        return cls or error_class_for_status(status, code, message)

    def stream_error(
        self, exception_type: str, payload: bytes, model: str, headers: Mapping[str, str]
    ) -> ProviderError:
        """An exception frame inside a ConverseStream reply, classified like an HTTP error."""
        code = _error_type(exception_type[:1].upper() + exception_type[1:])
        try:
            data = json.loads(payload) if payload else {}
        except ValueError:
            data = {"message": payload[:500].decode("utf-8", "replace")}
        message = str(data.get("message") or data.get("Message") or code or "stream error")
        status = int(data.get("originalStatusCode") or 0) or 500
        cls = self.classify(status, code, message)
        return cls(
            message,
            provider=self.name,
            model=model,
            headers=dict(headers),
            request_id=self.request_id(headers),
            retry_after=parse_retry_after(headers),
            body=error_body(payload),
            code=code,
        )

    # -- embeddings ------------------------------------------------------------------------
    def embed_batch_limit(self, model: str) -> int | None:
        """Titan embeds one ``inputText`` per request; Cohere Embed on Bedrock up to 96
        ``texts``. A larger ``embed`` becomes several requests (in order, one attempt)."""
        family = _embed_family(model)
        return None if family is None else {"titan": 1, "cohere": 96}.get(family)

    def build_embed(self, req: EmbedRequest, model: str) -> WireRequest:
        family = _embed_family(model)
        body: dict[str, Any]
        if family == "titan":
            if len(req.inputs) != 1:  # the flow splits by embed_batch_size
                raise ContractError(
                    f"embed on Bedrock model {model!r}: Titan embedding models take one input "
                    f"per request, got {len(req.inputs)}"
                )
            body = {"inputText": req.inputs[0]}
            if "titan-embed-text-v1" in model:
                if req.dimensions is not None:
                    raise ContractError(
                        f"embed on {model!r}: dimensions is not supported by Titan v1; use "
                        "amazon.titan-embed-text-v2:0 (256, 512 or 1024)"
                    )
            else:
                if req.dimensions is not None:
                    body["dimensions"] = req.dimensions
                body["normalize"] = True
        elif family == "cohere":
            input_type = {"query": "search_query", "document": "search_document"}.get(
                req.input_type or "document", req.input_type or "search_document"
            )
            body = {"texts": req.inputs, "input_type": input_type}
            if req.dimensions is not None:
                if "embed-v4" not in model:
                    raise ContractError(
                        f"embed on {model!r}: dimensions is only supported by Cohere Embed v4 "
                        "(cohere.embed-v4:0)"
                    )
                body["output_dimension"] = req.dimensions
        else:
            raise ContractError(
                f"embed on Bedrock model {model!r}: portal knows the request format of Titan "
                "text embeddings (amazon.titan-embed-text-*) and Cohere Embed (cohere.embed-*)"
            )
        body.update(req.options_for(self.kind))
        return self.sign(self.json_request(self.model_url(model, "invoke"), body))

    def parse_embed(self, reply: WireReply, model: str) -> EmbedResponse:
        try:
            data = reply.json()
            if _embed_family(model) == "titan":
                vectors = [list(map(float, data["embedding"]))]
                tokens = data.get("inputTextTokenCount")
            else:
                embeddings = data["embeddings"]
                if isinstance(embeddings, dict):  # embedding_types=["float"] answers by type
                    embeddings = embeddings["float"]
                vectors = [list(map(float, v)) for v in embeddings]
                tokens = None
        except (ValueError, KeyError, TypeError) as exc:
            raise self.invalid(f"embedding reply not understood ({exc})", model) from None
        header = reply.headers.get("x-amzn-bedrock-input-token-count")
        count = int(header) if header and header.isdigit() else int(tokens or 0)
        return EmbedResponse(vectors, Usage(input_tokens=count), model)


def _error_type(code: str | None) -> str | None:
    """``ThrottlingException:http://internal.amazon.com/...`` or
    ``com.amazon.coral.service#ThrottlingException`` -> ``ThrottlingException``."""
    if not code:
        return None
    return code.split(":", 1)[0].rsplit("#", 1)[-1] or None


def _embed_family(model: str) -> str | None:
    if "titan-embed-text" in model:
        return "titan"
    if "cohere.embed" in model:
        return "cohere"
    return None


def reasoning_blocks(call: ToolCall) -> list[dict[str, Any]]:
    """The Bedrock ``reasoningContent`` values a call carries in ``provider_data`` (those that
    came before it in the reply), in order; empty for a call from elsewhere."""
    return carried(call, PROVIDER_DATA_KEY, "reasoning")


def _replayed_reasoning(call: ToolCall) -> list[dict[str, Any]]:
    return [{REASONING_BLOCK: r} for r in reasoning_blocks(call)]


def reasoning_text(value: Mapping[str, Any]) -> str:
    """The visible text of a ``reasoningContent`` value ("" for redacted content)."""
    text = value.get("reasoningText")
    return str(text.get("text") or "") if isinstance(text, Mapping) else ""


def _join_base64(pieces: list[str]) -> str:
    """Redacted reasoning arrives base64-encoded, normally in one delta: kept as given. Should
    it come in several, their bytes are joined (base64 pieces do not simply concatenate)."""
    if len(pieces) == 1:
        return pieces[0]
    try:
        raw = b"".join(base64.b64decode(p, validate=True) for p in pieces)
    except (binascii.Error, ValueError):
        return "".join(pieces)
    return base64.b64encode(raw).decode("ascii")


def _has_tool_blocks(messages: list[dict[str, Any]]) -> bool:
    return any(
        "toolUse" in block or "toolResult" in block for m in messages for block in m["content"]
    )


def normalize_finish(raw: Any, has_content: bool, has_calls: bool) -> str:
    if raw is None:
        return "tool_calls" if has_calls else "stop"
    finish = FINISH_REASON_MAP.get(str(raw))
    if finish is None:
        return "stop" if has_content else "error"
    if finish == "tool_calls" and not has_calls:
        return "stop"  # the only toolUse was the structured-output tool (stream)
    return finish


class BedrockStreamParser(StreamParser):
    """``application/vnd.amazon.eventstream`` frames, decoded by botocore: events
    ``messageStart``, ``contentBlockStart``/``Delta``/``Stop``, ``messageStop`` (stopReason),
    ``metadata`` (usage, metrics); ``exception`` frames raise the classified error. The reply
    is complete once ``messageStop`` arrived (``metadata`` follows it). Reasoning deltas
    (``text`` pieces, then the ``signature``; or ``redactedContent``) are reassembled per
    ``contentBlockIndex`` and attached to the tool call that follows, as in `parse_chat`."""

    def __init__(self, adapter: BedrockAdapter, model: str, output_tool: str | None) -> None:
        self.adapter = adapter
        self.model = model
        self.output_tool = output_tool
        self.buffer = _botocore().eventstream.EventStreamBuffer()
        self.text: list[str] = []
        self.structured: list[str] | None = None
        self.tools = ToolCallAssembler()
        self.block_kind: dict[int, str] = {}
        #: contentBlockIndex -> {"text" | "signature" | "redactedContent": [pieces]}
        self.reasoning: dict[int, dict[str, list[str]]] = {}
        #: tool-call block indices, in the order the assembler returns their calls
        self.call_keys: list[int] = []
        self.usage: Usage | None = None
        self.stop_reason: str | None = None
        self.stopped = False
        self.latency_ms: Any = None

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        from botocore.eventstream import ParserError  # type: ignore[import-untyped]

        self.buffer.add_data(chunk)
        events: list[StreamEvent] = []
        try:
            for message in self.buffer:
                self._message(message.headers, message.payload, events)
        except ParserError as exc:
            raise self.adapter.invalid(
                f"event stream frame is corrupt ({type(exc).__name__}: {exc})", self.model
            ) from None
        return events

    def _message(
        self, headers: Mapping[str, Any], payload: bytes, events: list[StreamEvent]
    ) -> None:
        mtype = headers.get(":message-type", "event")
        if mtype == "exception":
            raise self.adapter.stream_error(
                str(headers.get(":exception-type") or ""), payload, self.model, {}
            )
        if mtype == "error":
            code = str(headers.get(":error-code") or "")
            message = str(headers.get(":error-message") or code)
            raise self.adapter.stream_error(
                code, json.dumps({"message": message}).encode(), self.model, {}
            )
        try:
            obj = json.loads(payload) if payload else {}
        except ValueError:
            raise self.adapter.invalid("event stream payload is not JSON", self.model) from None
        kind = headers.get(":event-type")
        if kind == "contentBlockStart":
            index = int(obj.get("contentBlockIndex", 0))
            start = obj.get("start") or {}
            use = start.get("toolUse")
            if isinstance(use, dict):
                name = str(use.get("name") or "")
                if name == self.output_tool:
                    self.block_kind[index] = "output"
                    self.structured = self.structured or []
                else:
                    self.block_kind[index] = "tool"
                    self._track_call(index)
                    self.tools.start(index, use.get("toolUseId"), name)
            elif start:
                self.block_kind[index] = "unknown"
                self.keep_unknown_event({kind: obj})
        elif kind == "contentBlockDelta":
            index = int(obj.get("contentBlockIndex", 0))
            delta = obj.get("delta") or {}
            if self.block_kind.get(index) == "unknown":
                self.keep_unknown_event({kind: obj})  # the rest of a block portal has no rule for
            elif "text" in delta:
                piece = delta["text"]
                if not isinstance(piece, str):
                    raise self.adapter.invalid("a text delta is not a string", self.model)
                if piece:
                    self.text.append(piece)
                    events.append(StreamEvent("text", text=piece))
            elif isinstance(delta.get("toolUse"), dict):
                piece = str(delta["toolUse"].get("input") or "")
                if self.block_kind.get(index) == "output":
                    assert self.structured is not None
                    self.structured.append(piece)
                    if piece:
                        events.append(StreamEvent("text", text=piece))
                else:
                    self._track_call(index)
                    self.tools.add_arguments(index, piece)
            elif isinstance(delta.get(REASONING_BLOCK), dict):
                self._reasoning_delta(index, delta[REASONING_BLOCK], {kind: obj})
                piece = delta[REASONING_BLOCK].get("text")
                if piece and isinstance(piece, str):
                    events.append(StreamEvent("reasoning", text=piece))
            elif delta and REASONING_BLOCK not in delta:
                self.keep_unknown_event({kind: obj})
        elif kind == "messageStop":
            self.stopped = True
            self.stop_reason = obj.get("stopReason")
        elif kind == "metadata":
            if isinstance(obj.get("usage"), dict):
                self.usage = self.adapter._usage(obj["usage"], self.model)
                events.append(StreamEvent("usage", usage=self.usage))
            self.latency_ms = (obj.get("metrics") or {}).get("latencyMs", self.latency_ms)
        elif kind not in IGNORED_EVENTS:
            self.keep_unknown_event({str(kind or ""): obj})

    def _track_call(self, index: int) -> None:
        if index not in self.call_keys:
            self.call_keys.append(index)

    def _reasoning_delta(self, index: int, delta: dict[str, Any], event: dict[str, Any]) -> None:
        block = self.reasoning.setdefault(index, {})
        known = False
        for member in ("text", "signature", "redactedContent"):
            if isinstance(delta.get(member), str):
                block.setdefault(member, []).append(delta[member])
                known = True
        if not known:
            self.keep_unknown_event(event)  # a reasoning delta member added later

    def reasoning_value(self, index: int) -> dict[str, Any]:
        """The ``reasoningContent`` value of a streamed block, as Converse would return it."""
        pieces = self.reasoning[index]
        value: dict[str, Any] = {}
        if "text" in pieces or "signature" in pieces:
            text: dict[str, Any] = {"text": "".join(pieces.get("text", []))}
            if "signature" in pieces:
                text["signature"] = "".join(pieces["signature"])
            value["reasoningText"] = text
        if "redactedContent" in pieces:
            value["redactedContent"] = _join_base64(pieces["redactedContent"])
        return value

    def attach_reasoning(self, calls: list[ToolCall]) -> list[str]:
        """Put each reasoning block on the next tool call (blocks since the previous call, in
        block order); a structured-output tool block also ends a run. Returns the visible
        reasoning text of every block, in order."""
        position = {key: n for n, key in enumerate(self.call_keys)}
        outputs = {i for i, k in self.block_kind.items() if k == "output"}
        pending: list[dict[str, Any]] = []
        thoughts: list[str] = []
        for index in sorted({*self.reasoning, *position, *outputs}):
            if index in self.reasoning:
                value = self.reasoning_value(index)
                pending.append(value)
                thoughts.append(reasoning_text(value))
            if index in position:
                carry(calls[position[index]], PROVIDER_DATA_KEY, "reasoning", pending)
                pending = []
            elif index in outputs:
                pending = []
        return thoughts

    def finish(self) -> Response:
        plain = "".join(self.text)
        if not self.stopped:
            partial = "".join(self.structured) if self.structured is not None else plain
            raise self.adapter.interrupted(
                "stream ended before the reply was complete (no messageStop event)",
                self.model,
                partial,
                self.usage,
            )
        calls = self.tools.finish(self.adapter.name, self.model)
        thoughts = self.attach_reasoning(calls)
        details: dict[str, Any] = {}
        if self.latency_ms is not None:
            details["latency_ms"] = self.latency_ms
        text = forced_tool_text(self.structured, plain, details, self.adapter, self.model)
        return Response(
            text=text,
            tool_calls=calls,
            reasoning=join_reasoning(thoughts),
            finish_reason=normalize_finish(  # type: ignore[arg-type]
                self.stop_reason, bool(text or calls), bool(calls)
            ),
            raw_finish_reason=self.stop_reason,
            usage=self.usage or Usage(),
            provider_details=self.unknown_details(details),
        )
