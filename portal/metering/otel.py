"""OpenTelemetry for portal calls: GenAI semantic-convention spans and metrics.

Enabled by ``[portal] telemetry = true`` with the ``otel`` extra installed. Spans are made
*after the fact*: the meter hands each finished attempt and call to `Telemetry`, which
creates the spans with their recorded start and end times. Nothing on the request path
waits on tracing, and a call's attempt spans (retries, failovers, hedge losers) are
children of its call span even though they ended before it did.

Span per call: ``chat {model}`` / ``embeddings {model}`` (kind CLIENT), with the
`gen_ai.*` attributes of the GenAI conventions and portal's own ``portal.*`` attributes
for what they lack (feature, arm, attempt count, cost, target). One child span per
attempt, same attributes for that try. Metrics (per attempt, i.e. per request to a vendor):
``gen_ai.client.token.usage`` (histogram, ``{token}``, ``gen_ai.token.type`` =
input/output), ``gen_ai.client.operation.duration`` (histogram, seconds) and ``portal.cost``
(counter, USD). `Telemetry.tool_span` (reached as `Meter.tool_span`) records an
``execute_tool`` span for the tool loop.

The providers default to the global ones (whatever the app or an OTel distro set up);
tests pass an SDK provider with in-memory exporters/readers. This module is imported only
when telemetry is on, so without the extra nothing from opentelemetry is loaded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

__all__ = ["PROVIDER_NAMES", "Telemetry"]

logger = logging.getLogger("portal.metering")

INSTRUMENTATION = "portal"

#: portal provider kinds → the conventions' well-known ``gen_ai.provider.name`` values;
#: other kinds (sim, openai-compatible hosts, ...) report the kind itself
PROVIDER_NAMES: dict[str, str] = {
    "openai": "openai",
    "azure-openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "gemini": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "mistral": "mistral_ai",
    "cohere": "cohere",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
}

# the conventions' advised bucket boundaries
_TOKEN_BUCKETS = [
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
]
_DURATION_BUCKETS = [
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
]

#: attempts kept while their call is still running; beyond it the oldest are dropped
_MAX_PENDING_CALLS = 10_000


def _ns(epoch_s: float) -> int:
    return int(epoch_s * 1e9)


@dataclass(slots=True)
class _PendingAttempt:
    attrs: dict[str, Any]
    start: float
    end: float
    error: str | None


class Telemetry:
    """Turns finished attempts and calls into spans and metric points."""

    def __init__(
        self,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        kinds: Mapping[str, str] | None = None,
    ) -> None:
        from portal._version import __version__

        self.tracer = trace.get_tracer(INSTRUMENTATION, __version__, tracer_provider)
        meter = metrics.get_meter(INSTRUMENTATION, __version__, meter_provider)
        self.kinds = dict(kinds or {})
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.cost = meter.create_counter(
            "portal.cost", unit="USD", description="Money spent on vendor calls, in USD"
        )
        self._pending: dict[str, list[_PendingAttempt]] = {}
        self._lock = threading.Lock()

    def provider_name(self, provider: str) -> str:
        kind = self.kinds.get(provider, provider)
        return PROVIDER_NAMES.get(kind, kind)

    # -- attempts -------------------------------------------------------------------------
    def attempt(
        self,
        *,
        call_id: str,
        operation: str,
        feature: str | None,
        arm: str,
        provider: str,
        model: str,
        target: str,
        number: int,
        outcome: str,
        error: str | None,
        usage: Any,
        cost_usd: float | None,
        latency_ms: float,
        started_at: float,
    ) -> None:
        """Record one finished attempt: metrics now, its span when the call ends."""
        op = _op_name(operation)
        base: dict[str, Any] = {
            "gen_ai.operation.name": op,
            "gen_ai.provider.name": self.provider_name(provider),
            "gen_ai.request.model": model,
        }
        if error is not None:
            base["error.type"] = error
        if feature is not None:
            base["portal.feature"] = feature
        base["portal.arm"] = arm
        self.duration.record(latency_ms / 1000.0, base)
        if usage is not None:
            self.token_usage.record(usage.input_tokens, base | {"gen_ai.token.type": "input"})
            if op != "embeddings":
                self.token_usage.record(usage.output_tokens, base | {"gen_ai.token.type": "output"})
        if cost_usd:
            self.cost.add(cost_usd, base)
        attrs = base | {
            "portal.provider": provider,
            "portal.target": target,
            "portal.attempt": number,
            "portal.outcome": outcome,
        }
        attrs.update(_usage_attrs(usage))
        if cost_usd is not None:
            attrs["portal.cost_usd"] = cost_usd
        pending = _PendingAttempt(attrs, started_at, started_at + latency_ms / 1000.0, error)
        with self._lock:
            items = self._pending.get(call_id)
            if items is None:
                if len(self._pending) >= _MAX_PENDING_CALLS:
                    self._pending.pop(next(iter(self._pending)))
                items = self._pending[call_id] = []
            items.append(pending)

    # -- calls ----------------------------------------------------------------------------
    def call(
        self,
        *,
        call_id: str,
        operation: str,
        feature: str | None,
        arm: str,
        target: str,
        provider: str,
        model: str,
        response_model: str | None,
        finish_reason: str | None,
        attempts: int,
        usage: Any,
        cost_usd: float | None,
        error: str | None,
        outcome: str,
        latency_ms: float,
        started_at: float,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Create the call span and, under it, the spans of its attempts. ``extra``:
        attributes added to the call span as given."""
        with self._lock:
            pending = self._pending.pop(call_id, [])
        op = _op_name(operation)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": op,
            "gen_ai.provider.name": self.provider_name(provider) if provider else "",
            "gen_ai.request.model": model,
            "portal.arm": arm,
            "portal.attempt": attempts,
            "portal.target": target,
            "portal.outcome": outcome,
        }
        if feature is not None:
            attrs["portal.feature"] = feature
        if provider:
            attrs["portal.provider"] = provider
        if response_model:
            attrs["gen_ai.response.model"] = response_model
        if finish_reason:
            attrs["gen_ai.response.finish_reasons"] = [finish_reason]
        attrs.update(_usage_attrs(usage))
        if cost_usd is not None:
            attrs["portal.cost_usd"] = cost_usd
        if error is not None:
            attrs["error.type"] = error
        if extra:
            attrs.update(extra)
        end = started_at + latency_ms / 1000.0
        span = self.tracer.start_span(
            f"{op} {model}".strip(),
            kind=SpanKind.CLIENT,
            attributes=attrs,
            start_time=_ns(started_at),
        )
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        parent = trace.set_span_in_context(span)
        last_ok = max((i for i, p in enumerate(pending) if p.error is None), default=None)
        for i, p in enumerate(pending):
            a = dict(p.attrs)
            if i == last_ok and error is None:
                if response_model:
                    a["gen_ai.response.model"] = response_model
                if finish_reason:
                    a["gen_ai.response.finish_reasons"] = [finish_reason]
            child = self.tracer.start_span(
                f"{op} {a['gen_ai.request.model']}",
                context=parent,
                kind=SpanKind.CLIENT,
                attributes=a,
                start_time=_ns(p.start),
            )
            if p.error is not None:
                child.set_status(Status(StatusCode.ERROR, p.error))
            child.end(end_time=_ns(max(p.end, p.start)))
        span.end(end_time=_ns(max(end, started_at)))

    # -- tools ----------------------------------------------------------------------------
    def tool_span(self, name: str, latency_ms: float, outcome: str = "ok") -> None:
        """An ``execute_tool {name}`` span that ended now and lasted ``latency_ms``;
        ``outcome`` is "ok" or the error's class name."""
        end = time.time_ns()
        start = end - int(max(latency_ms, 0.0) * 1e6)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.type": "function",
        }
        if outcome != "ok":
            attrs["error.type"] = outcome
        span = self.tracer.start_span(
            f"execute_tool {name}",
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            start_time=start,
        )
        if outcome != "ok":
            span.set_status(Status(StatusCode.ERROR, outcome))
        span.end(end_time=end)


def _op_name(operation: str) -> str:
    return "embeddings" if operation == "embed" else "chat"


def _usage_attrs(usage: Any) -> dict[str, Any]:
    if usage is None:
        return {}
    out: dict[str, Any] = {
        "gen_ai.usage.input_tokens": int(usage.input_tokens),
        "gen_ai.usage.output_tokens": int(usage.output_tokens),
    }
    if usage.cached_input_tokens:
        out["gen_ai.usage.cache_read.input_tokens"] = int(usage.cached_input_tokens)
    if usage.cache_write_tokens:
        out["gen_ai.usage.cache_creation.input_tokens"] = int(usage.cache_write_tokens)
    if usage.reasoning_tokens:
        out["portal.usage.reasoning_tokens"] = int(usage.reasoning_tokens)
    if usage.estimated:
        out["portal.usage.estimated"] = True
    return out
