"""OpenTelemetry: GenAI semantic-convention spans and metrics from real client calls, read
back with the SDK's in-memory exporter and reader; nothing imported when it is off."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import portal
from portal.contracts.responses import Usage
from portal.metering.meter import Meter
from portal.metering.otel import Telemetry


class Otel:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        tp = TracerProvider()
        tp.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.telemetry = Telemetry(
            tp,
            MeterProvider(metric_readers=[self.reader]),
            kinds={"a": "sim", "b": "sim", "oa": "openai"},
        )

    def metrics(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        data = self.reader.get_metrics_data()
        assert data is not None
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    out.setdefault(m.name, []).extend(m.data.data_points)
                    out.setdefault(m.name + ":unit", []).append(m.unit)
        return out


@pytest.fixture
def otel() -> Iterator[Otel]:
    yield Otel()


def _client(otel: Otel, **features: Any) -> portal.Client:
    cfg = {
        "portal": {"ledger": "none"},
        "providers": {
            "a": {
                "kind": "sim",
                "options": {"seed": 1, "time_scale": 0, "error_rates": {"server_error": 1.0}},
            },
            "b": {"kind": "sim", "options": {"seed": 2, "time_scale": 0}},
        },
        "features": features
        or {
            "f": {"primary": "a:sim-small", "fallbacks": ["b:sim-large"], "retry": {"attempts": 1}}
        },
    }
    meter = Meter(kinds={"a": "sim", "b": "sim"}, telemetry=otel.telemetry)
    return portal.Client(cfg, meter=meter)


def test_call_and_attempt_spans_follow_the_genai_conventions(otel: Otel) -> None:
    client = _client(otel)
    resp = client.chat(feature="f", messages=[portal.user("where is order 7?")], key="u1")
    client.close()
    spans = otel.spans.get_finished_spans()
    assert len(spans) == 3  # the call, the failed attempt on a, the good one on b
    call = next(s for s in spans if s.parent is None)
    children = sorted((s for s in spans if s.parent is not None), key=lambda s: s.start_time)
    assert all(c.parent.span_id == call.context.span_id for c in children)  # type: ignore[union-attr]
    assert all(c.context.trace_id == call.context.trace_id for c in children)

    assert call.name == "chat sim-small"
    assert call.kind == SpanKind.CLIENT
    a = call.attributes
    assert a is not None
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "sim"
    assert a["gen_ai.request.model"] == "sim-small"  # what was asked for first
    assert a["gen_ai.response.model"] == resp.model
    assert tuple(a["gen_ai.response.finish_reasons"]) == (resp.finish_reason,)  # type: ignore[arg-type]
    assert a["gen_ai.usage.input_tokens"] == resp.usage.input_tokens
    assert a["gen_ai.usage.output_tokens"] == resp.usage.output_tokens
    assert a["portal.feature"] == "f"
    assert a["portal.arm"] == "baseline"
    assert a["portal.attempt"] == 2
    assert a["portal.target"] == "b:sim-large"
    assert a["portal.cost_usd"] == pytest.approx(resp.cost_usd)
    assert "error.type" not in a
    assert call.status.status_code != StatusCode.ERROR
    # timing is the call's own, recorded after the fact
    assert call.end_time is not None and call.start_time is not None
    assert (call.end_time - call.start_time) / 1e6 == pytest.approx(resp.latency_ms, abs=5.0)

    failed, ok = children
    fa = failed.attributes
    assert fa is not None
    assert fa["error.type"] == "ServerError"
    assert fa["portal.target"] == "a:sim-small" and fa["portal.attempt"] == 1
    assert failed.status.status_code == StatusCode.ERROR
    oa = ok.attributes
    assert oa is not None
    assert oa["gen_ai.request.model"] == "sim-large"
    assert oa["gen_ai.response.model"] == resp.model
    assert oa["portal.cost_usd"] == pytest.approx(resp.attempts[-1].cost_usd)
    assert call.start_time <= failed.start_time <= ok.start_time  # type: ignore[operator]
    assert ok.end_time <= call.end_time + 1_000_000  # type: ignore[operator]


def test_metrics_tokens_duration_and_cost(otel: Otel) -> None:
    client = _client(otel)
    resps = [client.chat(feature="f", messages=[portal.user(f"q {i}")]) for i in range(3)]
    client.close()
    m = otel.metrics()
    assert m["gen_ai.client.token.usage:unit"] == ["{token}"]
    assert m["gen_ai.client.operation.duration:unit"] == ["s"]
    tokens = {
        (
            dict(p.attributes)["gen_ai.token.type"],
            dict(p.attributes)["gen_ai.provider.name"],
            dict(p.attributes)["gen_ai.request.model"],
        ): p
        for p in m["gen_ai.client.token.usage"]
    }
    out = tokens[("output", "sim", "sim-large")]
    assert out.sum == sum(r.usage.output_tokens for r in resps)
    assert out.count == 3
    inp = tokens[("input", "sim", "sim-large")]
    assert inp.sum == sum(r.usage.input_tokens for r in resps)
    durations = {
        dict(p.attributes).get("error.type"): p for p in m["gen_ai.client.operation.duration"]
    }
    assert durations["ServerError"].count == 3  # the failed attempts, labelled by error
    assert durations[None].count == 3
    cost = sum(p.value for p in m["portal.cost"])
    assert cost == pytest.approx(sum(r.cost_usd for r in resps))


def test_embeddings_and_cached_tokens_and_tool_spans(otel: Otel) -> None:
    meter = Meter(kinds={"oa": "openai"}, telemetry=otel.telemetry)
    from portal.contracts.responses import Attempt

    usage = Usage(
        input_tokens=1000, output_tokens=20, cached_input_tokens=800, cache_write_tokens=100
    )
    att = Attempt(
        target="oa:gpt-4.1-mini", outcome="ok", latency_ms=40.0, usage=usage, cost_usd=0.001
    )
    meter.attempt(
        call_id="c1",
        operation="embed",
        feature=None,
        contract_version=None,
        key=None,
        tenant=None,
        tags={},
        provider="oa",
        model="gpt-4.1-mini",
        arm="baseline",
        attempt=att,
        started_at=1_700_000_000.0,
    )
    meter.call(
        call_id="c1",
        operation="embed",
        feature=None,
        contract_version=None,
        key=None,
        tenant=None,
        tags={},
        arm="baseline",
        attempts=[att],
        response=None,
        error=RuntimeError("x"),
        cost_usd=0.001,
        latency_ms=50.0,
        started_at=1_700_000_000.0,
    )
    meter.tool_span("lookup_order", 12.5, "ok")
    meter.tool_span("refund", 3.0, "ValueError")
    spans = {s.name: s for s in otel.spans.get_finished_spans()}
    call = spans["embeddings gpt-4.1-mini"]
    assert call.attributes is not None
    assert call.attributes["error.type"] == "RuntimeError"
    assert call.status.status_code == StatusCode.ERROR
    child = next(s for s in otel.spans.get_finished_spans() if s.parent is not None)
    ca = child.attributes
    assert ca is not None
    assert ca["gen_ai.provider.name"] == "openai"
    assert ca["gen_ai.usage.cache_read.input_tokens"] == 800
    assert ca["gen_ai.usage.cache_creation.input_tokens"] == 100
    assert child.start_time == 1_700_000_000 * 10**9
    assert child.end_time == child.start_time + 40_000_000  # type: ignore[operator]
    tool = spans["execute_tool lookup_order"]
    assert tool.attributes is not None
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "lookup_order"
    assert (tool.end_time - tool.start_time) == 12_500_000  # type: ignore[operator]
    bad = spans["execute_tool refund"]
    assert bad.attributes is not None and bad.attributes["error.type"] == "ValueError"
    # embeddings record input tokens only
    types = {
        dict(p.attributes)["gen_ai.token.type"] for p in otel.metrics()["gen_ai.client.token.usage"]
    }
    assert types == {"input"}


def test_telemetry_true_uses_the_global_providers_and_off_imports_nothing() -> None:
    code = r"""
import sys
import portal
cfg = {"portal": {"ledger": "none"}, "providers": {"a": {"kind": "sim", "options": {"time_scale": 0}}},
       "features": {"f": {"primary": "a:sim-small"}}}
with portal.Client(cfg) as c:
    c.chat(feature="f", messages=[portal.user("hi")])
    c.embed(model="a:sim-embed", inputs=["x"])
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
print("LOADED", len(loaded), loaded[:3])
assert not loaded, loaded
assert c.meter.telemetry is None
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "LOADED 0" in done.stdout

    on = r"""
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exp = InMemorySpanExporter()
tp = TracerProvider(); tp.add_span_processor(SimpleSpanProcessor(exp))
trace.set_tracer_provider(tp)
import portal
cfg = {"portal": {"ledger": "none", "telemetry": True},
       "providers": {"a": {"kind": "sim", "options": {"time_scale": 0}}},
       "features": {"f": {"primary": "a:sim-small"}}}
with portal.Client(cfg) as c:
    c.chat(feature="f", messages=[portal.user("hi")])
print(sorted(s.name for s in exp.get_finished_spans()))
"""
    done = subprocess.run([sys.executable, "-c", on], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['chat sim-small', 'chat sim-small']"


def test_without_the_extra_telemetry_true_warns_and_calls_still_work() -> None:
    code = r"""
import sys, logging
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError("blocked for the test")
        return None
sys.meta_path.insert(0, Block())
logging.basicConfig(level=logging.WARNING)
import portal
cfg = {"portal": {"ledger": "none", "telemetry": True},
       "providers": {"a": {"kind": "sim", "options": {"time_scale": 0}}},
       "features": {"f": {"primary": "a:sim-small"}}}
with portal.Client(cfg) as c:
    r = c.chat(feature="f", messages=[portal.user("hi")])
print("OK", r.target)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "OK a:sim-small" in done.stdout
    assert "otel extra" in done.stderr and "pip install" in done.stderr
