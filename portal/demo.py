"""`portal demo`: a small support app on three simulated vendors, offline, in a few seconds.

What it shows, with numbers measured in the run: a 5% sticky canary, a flaky primary that
fails over to a warm secondary, structured output validated against a pydantic model, a tool
call run by the tool loop, streaming with time to first token, embeddings, and per-feature,
per-vendor latency percentiles, tokens and cost from the ledger.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel, Field

from portal.client import AsyncClient
from portal.contracts.messages import user

__all__ = ["DEMO_CONFIG", "run_demo"]

DEMO_CONFIG = """\
# The config `portal demo` runs: three simulated vendors standing in for real ones.
[portal]
ledger = "sqlite:///ledger.db"

[providers.acme]            # the primary: fast, but throttles and errors part of the time
kind = "sim"
region = "us"
[providers.acme.options]
seed = 11
latency_p50_ms = 140
latency_p99_ms = 900
ttft_ms = 90
tokens_per_s = 220
error_rates = { server_error = 0.06, rate_limit = 0.04, overloaded = 0.03 }
retry_after_s = 0.05

[providers.bolt]            # the warm secondary in another "vendor"
kind = "sim"
region = "us"
[providers.bolt.options]
seed = 22
latency_p50_ms = 220
latency_p99_ms = 700
ttft_ms = 140
tokens_per_s = 160

[providers.cirrus]          # the canary's vendor: a bigger model
kind = "sim"
region = "eu"
[providers.cirrus.options]
seed = 33
latency_p50_ms = 320
latency_p99_ms = 1100
ttft_ms = 200
tokens_per_s = 120

[features."support.answer"]
contract = "contracts/support_answer.toml"
primary = "acme:sim-small"
fallbacks = ["bolt:sim-medium"]
sla = { p95_ms = 1500, p99_ms = 3000 }
retry = { attempts = 2, base_wait_s = 0.02, max_wait_s = 0.2 }
timeout_s = 10
safety = ["pii", "injection"]   # redact personal data, block prompt injection (every vendor)
[features."support.answer".canary]
target = "cirrus:sim-large"
percent = 5

[features."support.summarize"]
primary = "bolt:sim-medium"
fallbacks = ["acme:sim-small"]
sla = { p95_ms = 2500 }

[features."search.embed"]
primary = "acme:sim-embed"
fallbacks = ["bolt:sim-embed"]

[features."support.faq"]    # RAG: a small FAQ indexed with search.embed, cited as [doc:ID]
primary = "bolt:sim-medium"
fallbacks = ["acme:sim-small"]
safety = ["injection"]      # also screens retrieved documents
rag = { retriever = "demo-faq", k = 2, max_context_tokens = 400 }
"""

FAQ = [
    {"id": "shipping", "text": "We ship to Canada, Mexico and the US; delivery takes 3 to 5 days."},
    {"id": "returns", "text": "Returns are free within 30 days; print the label in your account."},
    {"id": "damaged", "text": "For a damaged package, send a photo and we ship a replacement."},
    {"id": "lyon", "text": "Delivery to France, including Lyon, takes 5 to 7 business days."},
]


DEMO_CONTRACT = """\
# The contract of "support.answer": what the app sends, what it reads back, the tools.
name = "support.answer"
version = "1.0.0"
description = "Answers customers' questions about their orders"

[prompt]
system = "You are the support agent of an online shop. Answer briefly."
user = "Customer question: {question}"

[input]
type = "object"
required = ["question"]
additionalProperties = false
[input.properties.question]
type = "string"
minLength = 1

[output]
type = "object"
required = ["answer", "order_id", "needs_human"]
additionalProperties = false
[output.properties.answer]
type = "string"
[output.properties.order_id]
type = ["string", "null"]
[output.properties.needs_human]
type = "boolean"

[[tools]]
name = "lookup_order"
description = "Find an order by its id"
[tools.parameters]
type = "object"
required = ["order_id"]
additionalProperties = false
[tools.parameters.properties.order_id]
type = "string"
description = "the order number the customer gave"

[[examples]]
input = { question = "Where is my order 123?" }
output = { answer = "Order 123 ships tomorrow.", order_id = "123", needs_human = false }
"""


class Answer(BaseModel):
    """What the support feature returns to the app."""

    answer: str = Field(description="the reply shown to the customer")
    order_id: str | None = Field(None, description="the order the question is about")
    needs_human: bool = Field(description="escalate to a human agent")


def lookup_order(order_id: str) -> dict[str, str]:
    """Find an order by its id.

    Args:
        order_id: the order number the customer gave
    """
    return {"order_id": order_id, "status": "shipped", "carrier": "ACME Post"}


QUESTIONS = [
    "Where is my order {n}?",
    "Can I return the shoes from order {n}?",
    "My package {n} arrived damaged, what now?",
    "How long does delivery take to Lyon?",
    "Do you ship to Canada?",
]


async def _workload(client: AsyncClient, users: int, concurrency: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    limiter = anyio.CapacityLimiter(concurrency)
    errors: dict[str, int] = defaultdict(int)
    examples: dict[str, Any] = {}
    from portal.layers.rag import VectorIndex, register_retriever

    register_retriever("demo-faq", await VectorIndex.abuild(client, FAQ, feature="search.embed"))

    async def one_user(i: int) -> None:
        key = f"user-{i}"
        n = rng.randint(10000, 99999)
        q = rng.choice(QUESTIONS).format(n=n)
        async with limiter:
            try:
                if i % 4 == 0:
                    resp = await client.chat(  # the contract's prompt, tools and output
                        feature="support.answer",
                        input={"question": q},
                        tools=[lookup_order],
                        key=key,
                    )
                    examples.setdefault("tool", resp)
                elif i % 4 == 1:
                    text: list[str] = []
                    async for ev in client.stream(
                        feature="support.summarize",
                        messages=[user(f"Summarize this ticket: {q}")],
                        key=key,
                    ):
                        if ev.type == "text":
                            text.append(ev.text)
                        elif ev.type == "done":
                            examples.setdefault("stream", ev.response)
                elif i % 8 == 2:
                    emb = await client.embed(feature="search.embed", inputs=[q], key=key)
                    examples.setdefault("embed", emb)
                elif i % 8 == 6:
                    resp = await client.chat(feature="support.faq", messages=[user(q)], key=key)
                    examples.setdefault("rag", resp)
                else:
                    resp = await client.chat(  # the same, read back as a pydantic model
                        feature="support.answer",
                        input={"question": q},
                        tools=[lookup_order],
                        output=Answer,
                        key=key,
                    )
                    examples.setdefault("structured", resp)
            except Exception as exc:  # the demo counts what users would have seen
                errors[type(exc).__name__] += 1

    async with anyio.create_task_group() as tg:
        for i in range(users):
            tg.start_soon(one_user, i)
    return {"errors": dict(errors), "examples": examples}


def run_demo(
    out_dir: str | Path = ".portal/demo",
    users: int = 400,
    concurrency: int = 48,
    seed: int = 7,
    html: bool = True,
    printer: Any = print,
) -> dict[str, Any]:
    """Run the demo; return the measured rows (also printed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "portal.toml"
    config_path.write_text(DEMO_CONFIG, encoding="utf-8")
    (out / "contracts").mkdir(exist_ok=True)
    (out / "contracts" / "support_answer.toml").write_text(DEMO_CONTRACT, encoding="utf-8")
    ledger_path = out / "ledger.db"
    if ledger_path.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(str(ledger_path) + suffix).unlink(missing_ok=True)

    started = time.perf_counter()

    async def main() -> dict[str, Any]:
        async with AsyncClient.from_config(config_path) as client:
            return await _workload(client, users, concurrency, seed)

    result = anyio.run(main)
    elapsed = time.perf_counter() - started
    _print_summary(result, elapsed, users, config_path, printer)
    report_path = _report(config_path, out, html, printer)
    result["elapsed_s"] = elapsed
    result["report"] = report_path
    return result


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f} ms"


def _print_summary(
    result: dict[str, Any], elapsed: float, users: int, config_path: Path, printer: Any
) -> None:
    """One line per capability the workload exercised; the numbers per feature and per
    target come after it, from the ledger (`demo_report`), so they are printed once."""
    printer(
        f"portal demo: {users} user actions on 3 simulated vendors in {elapsed:.1f}s "
        f"(config: {config_path})"
    )
    ex = result["examples"]
    printer("")
    if "structured" in ex:
        r = ex["structured"]
        printer(f"structured output ({r.target}, arm {r.arm}): {r.output!r}")
    if "tool" in ex:
        r = ex["tool"]
        calls = [m for m in r.messages if m.role == "tool"]
        printer(f"tool loop ({r.target}): {len(calls)} tool result(s), answer: {r.text[:90]}")
    if "stream" in ex:
        r = ex["stream"]
        tokens = r.usage.output_tokens
        printer(f"stream ({r.target}): ttft {_ms(r.ttft_ms)}, {tokens} output tokens")
    if "rag" in ex:
        rag = ex["rag"].provider_details["rag"]
        printer(
            f"rag ({ex['rag'].target}): injected {rag['doc_ids']}, {rag['context_tokens']} "
            f"context tokens, retrieval {rag['latency_ms']:.1f} ms"
        )
    if "structured" in ex and "guards" in ex["structured"].provider_details:
        acts = [f"{g['guard']}:{g['action']}" for g in ex["structured"].provider_details["guards"]]
        printer(f"safety (support.answer): {', '.join(acts)}")
    errs = result["errors"]
    printer(f"errors seen by users: {sum(errs.values())} {dict(errs) if errs else ''}".rstrip())


def _report(config_path: Path, out: Path, html: bool, printer: Any) -> str | None:
    """The report of the demo's own ledger, when the report module is available."""
    import importlib

    try:
        report = importlib.import_module("portal.metering.report")
    except ImportError:
        return None
    run = getattr(report, "demo_report", None)
    if run is None:
        return None
    return run(config_path, out, html=html, printer=printer)  # type: ignore[no-any-return]
