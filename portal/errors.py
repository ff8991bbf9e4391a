"""Every failure a portal caller sees is one of these.

```
PortalError
├─ ConfigError                 unknown provider, missing key, bad model id, bad toml (file:line)
├─ ContractError               request/response/output does not satisfy the contract
├─ PolicyViolation             a safety guard or data-path policy blocked the call
├─ BudgetExceeded              a budget would be overspent
├─ ToolLoopExceeded            the tool loop ran past max_steps
├─ ProviderError               .provider .model .status .headers .request_id .retryable .retry_after
│  ├─ ProviderTimeout
│  ├─ ProviderConnectionError
│  ├─ RateLimited              429
│  ├─ Overloaded               503 / 529
│  ├─ ServerError              other 5xx
│  ├─ AuthenticationError      401 / 403
│  ├─ NotFound                 404
│  ├─ BadRequest               400 / 422
│  │  └─ ContextTooLong
│  ├─ ContentFiltered
│  ├─ InvalidResponse          the vendor replied with something that is not its documented shape
│  └─ StreamInterrupted        a stream ended early; keeps the partial text and usage
└─ AllTargetsFailed            also an ExceptionGroup of what each target raised
```

Provider errors keep what a router needs to classify them (status, lower-cased headers,
Retry-After in seconds, request id) and the original exception as ``__cause__``.

An error that arrives inside a stream or a 200 body is classified exactly like the same error
sent with an HTTP status: by its own code / type, then by a status the error object carries
(Groq's ``status_code``, OpenRouter's numeric ``code``), then by the status its type stands for.
``status`` is only ever a status that was on the wire: an in-stream error that carries none has
``status=None`` (a retryable `ServerError` when nothing else classifies it).
Messages never contain secrets: every registered credential (see `portal.secret`) is redacted
from an error's message, request id, headers, code and body as the error is built, whoever
builds it (a built-in adapter, a third-party one, a stream parser, the router).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from portal.secret import redact

__all__ = [
    "AllTargetsFailed",
    "AuthenticationError",
    "BadRequest",
    "BudgetExceeded",
    "ConfigError",
    "ContentFiltered",
    "ContextTooLong",
    "ContractError",
    "InvalidResponse",
    "NotFound",
    "Overloaded",
    "PolicyViolation",
    "PortalError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeout",
    "RateLimited",
    "ServerError",
    "StreamInterrupted",
    "ToolLoopExceeded",
]


class PortalError(Exception):
    """Base of every error portal raises. Registered secrets are redacted from its message."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*redact(args))


class ConfigError(PortalError):
    """The configuration is invalid. ``errors`` lists every problem found, one line each."""

    def __init__(self, message: str, errors: Sequence[str] | None = None) -> None:
        self.errors = list(errors) if errors else [message]
        super().__init__(message)


class ContractError(PortalError):
    """A request, a reply or a structured output does not satisfy its contract.

    ``details`` holds machine-readable findings (JSON pointer, keyword, message).
    """

    def __init__(self, message: str, details: Sequence[Mapping[str, Any]] | None = None) -> None:
        self.details = list(details or [])
        super().__init__(message)


class PolicyViolation(PortalError):
    """A safety guard or a data-path policy blocked the call."""

    def __init__(self, message: str, guard: str | None = None, reason: str | None = None) -> None:
        self.guard = guard
        self.reason = reason
        super().__init__(message)


class BudgetExceeded(PortalError):
    """Spending more would break a budget; says which one, how much was spent, when it resets."""

    def __init__(
        self,
        message: str,
        budget: str | None = None,
        spent_usd: float | None = None,
        limit_usd: float | None = None,
        resets_at: str | None = None,
    ) -> None:
        self.budget = budget
        self.spent_usd = spent_usd
        self.limit_usd = limit_usd
        self.resets_at = resets_at
        super().__init__(message)


class ToolLoopExceeded(PortalError):
    """The model kept asking for tools past ``max_steps``; ``transcript`` has every message."""

    def __init__(self, message: str, transcript: Sequence[Any] = ()) -> None:
        self.transcript = list(transcript)
        super().__init__(message)


class ProviderError(PortalError):
    """A vendor call failed. Carries everything a router needs to decide what to do next."""

    #: whether retrying the same target may succeed (class default, instances may override)
    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
        body: Any = None,
        code: str | None = None,
    ) -> None:
        message, request_id, code = redact((message, request_id, code))
        self.provider = provider
        self.model = model
        self.status = status
        self.headers = redact({k.lower(): v for k, v in (headers or {}).items()})
        self.request_id = request_id
        self.retry_after = retry_after
        self.retryable = self.default_retryable if retryable is None else retryable
        self.body = redact(body)
        self.code = code
        self.message = message
        super().__init__(message)

    @property
    def target(self) -> str | None:
        """The ``provider:model`` that raised, when known."""
        if self.provider is None:
            return None
        return f"{self.provider}:{self.model}" if self.model else self.provider

    def __str__(self) -> str:
        where = self.target
        bits = [f"{where}: " if where else "", self.message]
        extras = []
        if self.status is not None:
            extras.append(f"status {self.status}")
        if self.request_id:
            extras.append(f"request id {self.request_id}")
        if self.retry_after is not None:
            extras.append(f"retry after {self.retry_after:g}s")
        if extras:
            bits.append(f" ({', '.join(extras)})")
        return "".join(bits)


class ProviderTimeout(ProviderError):
    """The vendor did not answer in time (connect, read or the call's deadline)."""

    default_retryable = True


class ProviderConnectionError(ProviderError):
    """The vendor could not be reached (refused, reset, DNS, TLS)."""

    default_retryable = True


class RateLimited(ProviderError):
    """429: too many requests or tokens for the account."""

    default_retryable = True


class Overloaded(ProviderError):
    """503 / 529: the vendor is out of capacity right now."""

    default_retryable = True


class ServerError(ProviderError):
    """Any other 5xx."""

    default_retryable = True


class AuthenticationError(ProviderError):
    """401 / 403: the key is missing, wrong or lacks permission."""


class NotFound(ProviderError):
    """404: unknown model, deployment or endpoint."""


class BadRequest(ProviderError):
    """400 / 422: the vendor refused the request as malformed."""


class ContextTooLong(BadRequest):
    """The prompt does not fit the model's context window."""


class ContentFiltered(ProviderError):
    """The vendor's safety system refused the prompt or the answer."""


class InvalidResponse(ProviderError):
    """The vendor replied with a body that does not follow its documented format."""

    default_retryable = True


class StreamInterrupted(ProviderError):
    """A stream stopped before its end; ``partial_text`` and ``usage`` keep what arrived."""

    default_retryable = True

    def __init__(
        self, message: str, *, partial_text: str = "", usage: Any = None, **kw: Any
    ) -> None:
        self.partial_text = partial_text
        self.usage = usage
        super().__init__(message, **kw)


class AllTargetsFailed(PortalError, ExceptionGroup):  # type: ignore[misc]
    """Every target of the route failed; ``exceptions`` holds what each one raised, in order."""

    def __new__(cls, message: str, exceptions: Sequence[Exception]) -> AllTargetsFailed:
        return super().__new__(cls, message, list(exceptions))

    def __init__(self, message: str, exceptions: Sequence[Exception]) -> None:
        super().__init__(message, list(exceptions))

    def derive(self, excs: Sequence[Exception]) -> AllTargetsFailed:  # type: ignore[override]
        return AllTargetsFailed(self.message, excs)

    def __str__(self) -> str:
        lines = [self.message]
        for exc in self.exceptions:
            lines.append(f"  - {type(exc).__name__}: {exc}")
        return "\n".join(lines)
