"""Secrets, and the one redactor every portal error passes through.

A `Secret` never shows its value in a repr or a str, and it registers the value here when it is
made. `ProviderError` (see `portal.errors`) redacts every registered value from its message,
request id, headers, code and body as it is built, so a vendor that echoes the key back ("Incorrect
API key provided: sk-...") cannot put it into an exception, a log line, a ledger row or a report,
whichever adapter (built-in or third-party) or parser built the error. `scrub` does the same for
a foreign exception portal chains as a ``__cause__`` (it is printed with the traceback).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import quote

__all__ = ["REDACTED", "Secret", "known_secrets", "redact", "register_secret", "scrub"]

#: what a secret is replaced with
REDACTED = "<redacted>"
#: a value shorter than this is not redacted: it would erase ordinary words from messages
MIN_SECRET_LEN = 8
#: distinct values kept (most recent first out); a process has a handful of credentials
_MAX_SECRETS = 4096
#: nesting depth past which a body is not walked further (it is replaced, not kept raw)
_MAX_DEPTH = 64

_lock = threading.Lock()
_values: OrderedDict[str, None] = OrderedDict()
#: the registered values and their encoded forms, longest first; rebuilt on registration
_forms: tuple[str, ...] = ()


def register_secret(value: str) -> None:
    """Redact ``value`` (and its stripped and URL-encoded forms) from every portal error from
    now on. Values shorter than `MIN_SECRET_LEN` are ignored."""
    global _forms
    if not isinstance(value, str) or len(value.strip()) < MIN_SECRET_LEN:
        return
    with _lock:
        if value in _values:
            _values.move_to_end(value)
            return
        _values[value] = None
        while len(_values) > _MAX_SECRETS:
            _values.popitem(last=False)
        forms: set[str] = set()
        for v in _values:
            stripped = v.strip()
            forms.update((v, stripped, quote(stripped, safe=""), quote(stripped)))
        _forms = tuple(
            sorted((f for f in forms if len(f) >= MIN_SECRET_LEN), key=len, reverse=True)
        )


def known_secrets() -> tuple[str, ...]:
    """Every registered secret form, longest first (a snapshot)."""
    return _forms


class Secret:
    """A secret string that never shows itself in a repr, str, log line or error."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def redact_text(text: str, forms: tuple[str, ...] | None = None) -> str:
    """``text`` with every registered secret replaced by `REDACTED`."""
    for secret in _forms if forms is None else forms:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact(value: Any, _depth: int = 0) -> Any:
    """``value`` (a string, bytes, or JSON-like dicts and lists) with every registered secret
    replaced; anything else is returned as it is. A structure nested deeper than 64 levels is
    cut there rather than walked (an error body is kept for debugging, not for its depth)."""
    forms = _forms
    if not forms:
        return value
    return _redact(value, forms, _depth)


def _redact(value: Any, forms: tuple[str, ...], depth: int) -> Any:
    if isinstance(value, str):
        return redact_text(value, forms)
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
        cleaned = redact_text(text, forms)
        return value if cleaned == text else cleaned.encode()
    if isinstance(value, (dict, list, tuple)) and depth >= _MAX_DEPTH:
        return f"<nested deeper than {_MAX_DEPTH} levels>"
    if isinstance(value, dict):
        return {
            _redact(k, forms, depth + 1): _redact(v, forms, depth + 1) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v, forms, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_redact(v, forms, depth + 1) for v in value)
    return value


def scrub(exc: BaseException) -> BaseException:
    """Redact registered secrets from the arguments (hence the printed message) of ``exc`` and
    of every exception chained to it (causes, contexts, exception-group members). For foreign
    exceptions portal chains as a cause: an HTTP library's "Illegal header value b'Bearer sk-...'"
    is printed with the traceback. Returns ``exc``."""
    forms = _forms
    if not forms:
        return exc
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        try:
            cleaned = tuple(_redact(a, forms, 0) for a in current.args)
            if cleaned != current.args:
                current.args = cleaned
        except Exception:  # an exception type whose args cannot be set keeps them
            pass
        for attr in ("message", "msg", "detail"):  # what some libraries print instead of args
            text = getattr(current, attr, None)
            if isinstance(text, str) and redact_text(text, forms) != text:
                try:
                    setattr(current, attr, redact_text(text, forms))
                except Exception:
                    pass
        for nxt in (current.__cause__, current.__context__):
            if nxt is not None:
                todo.append(nxt)
        todo.extend(getattr(current, "exceptions", ()) or ())
    return exc
