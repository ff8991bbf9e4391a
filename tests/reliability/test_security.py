"""Secret hygiene, TLS, base URLs, redirects and PII, end to end.

Canary API keys (``sk-canary-<uuid>``) go into the environment, referenced by a config with
real vendor kinds pointed at a local server. Then the demo, the CLI (config check, contracts
check, route explain, report in every format), successful calls, error paths (a vendor that
echoes the key back in its 401, unreachable hosts, invalid replies) and reports run, and every
byte they produced is scanned for the canaries: stdout, stderr, log records at DEBUG,
exception messages, reprs and causes, ledger files, report files.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest

import portal
from portal.metering.ledger import read_records
from tests.reliability._servers import BadServer, bad_server

#: what these tests assert holds on every transport AsyncClient can send through
pytestmark = pytest.mark.usefixtures("both_transports")

ROOT = Path(__file__).resolve().parents[2]
VENDORS = ("OPENAI", "ANTHROPIC", "GEMINI", "AZURE", "MISTRAL", "COHERE")


@pytest.fixture(scope="module")
def server() -> Any:
    with bad_server() as srv:
        yield srv


@pytest.fixture
def canaries(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {f"CANARY_{v}": f"sk-canary-{uuid.uuid4()}" for v in VENDORS}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    # the vendors' own variables too: kinds used without a provider table read them
    monkeypatch.setenv("OPENAI_API_KEY", values["CANARY_OPENAI"])
    monkeypatch.setenv("ANTHROPIC_API_KEY", values["CANARY_ANTHROPIC"])
    return values


def write_config(tmp: Path, server: BadServer) -> Path:
    ok, echo = server.url("ok"), server.url("echo-key")
    text = f"""
[portal]
ledger = "sqlite:///ledger.db"

[providers.oa]
kind = "openai"
base_url = "{ok}"
api_key = "${{CANARY_OPENAI}}"

[providers.an]
kind = "anthropic"
base_url = "{echo}"
api_key = "${{CANARY_ANTHROPIC}}"

[providers.ge]
kind = "gemini"
base_url = "{echo}"
api_key = "${{CANARY_GEMINI}}"

[providers.az]
kind = "azure-openai"
base_url = "{echo.rsplit("/v1", 1)[0]}"
api_key = "${{CANARY_AZURE}}"
options = {{ api_version = "2024-10-21" }}

[providers.mi]
kind = "mistral"
base_url = "{echo}"
api_key = "${{CANARY_MISTRAL}}"

[providers.co]
kind = "cohere"
base_url = "http://127.0.0.1:9/v2"
api_key = "${{CANARY_COHERE}}"

[features.good]
primary = "oa:gpt-4o-mini"

[features.bad]
primary = "an:claude-haiku-4-5"
fallbacks = ["ge:gemini-2.5-flash", "az:gpt-4o", "mi:mistral-large-latest", "co:command-a-03-2025"]
retry = {{ attempts = 1 }}

[features.broken]
primary = "oa:gpt-4o-mini"
"""
    path = tmp / "portal.toml"
    path.write_text(text, encoding="utf-8")
    return path


def texts_of(exc: BaseException) -> list[str]:
    """Everything an exception can show: message, repr, attributes, causes, sub-exceptions."""
    out: list[str] = []
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        out += [str(e), repr(e), repr(vars(e)) if hasattr(e, "__dict__") else ""]
        todo += [x for x in (e.__cause__, e.__context__) if x is not None]
        todo += list(getattr(e, "exceptions", ()))
    return out


def run_cli(*args: str, cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "portal.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    return f"$ portal {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def files_under(path: Path) -> list[tuple[str, bytes]]:
    return [(str(p), p.read_bytes()) for p in path.rglob("*") if p.is_file()]


def test_canary_keys_never_leak(
    server: BadServer,
    canaries: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    cfg_path = write_config(tmp_path, server)
    seen: list[str] = []
    errors_seen: list[BaseException] = []

    client = portal.Client(cfg_path)
    seen += [repr(client.config), client.config.model_dump_json(), repr(client.router)]
    for name in ("oa", "an", "ge", "az", "mi", "co"):
        adapter = client._core.adapters.get(name)
        seen.append(repr(adapter))
        seen.append(repr(adapter.build_chat(portal.ChatRequest([portal.user("x")]), "m")))
    assert client.chat(feature="good", messages=[portal.user("hi")], key="alice@example.com").text
    for op in ("chat", "stream"):
        try:
            if op == "chat":
                client.chat(feature="bad", messages=[portal.user("hi")], key="alice@example.com")
            else:
                list(client.stream(feature="bad", messages=[portal.user("hi")]))
        except portal.PortalError as exc:
            errors_seen.append(exc)
    client.close()
    # the 401 that echoed the key was classified, with the key redacted
    leaves = [e for top in errors_seen for e in [top, *getattr(top, "exceptions", ())]]
    auth = [e for e in leaves if isinstance(e, portal.AuthenticationError)]
    assert auth and all("<redacted>" in e.message for e in auth)

    out = tmp_path / "out"
    out.mkdir()
    cli = [
        run_cli("config", "check", "--config", str(cfg_path), cwd=tmp_path),
        run_cli("contracts", "check", "--config", str(cfg_path), cwd=tmp_path),
        run_cli(
            "route",
            "explain",
            "bad",
            "--key",
            "alice@example.com",
            "--config",
            str(cfg_path),
            cwd=tmp_path,
        ),
        run_cli("report", "--config", str(cfg_path), cwd=tmp_path),
        run_cli("report", "--config", str(cfg_path), "--format", "json", cwd=tmp_path),
        run_cli("report", "--config", str(cfg_path), "--format", "csv", cwd=tmp_path),
        run_cli(
            "report",
            "--config",
            str(cfg_path),
            "--format",
            "html",
            "--out",
            str(out / "r.html"),
            cwd=tmp_path,
        ),
        run_cli("demo", "--out", str(out / "demo"), "--users", "30", cwd=tmp_path),
    ]
    # error paths of the CLI: a config with a mistake and one whose variable is missing
    bad = tmp_path / "bad.toml"
    bad.write_text(
        cfg_path.read_text().replace('kind = "mistral"', 'kind = "mistrall"'), encoding="utf-8"
    )
    cli.append(run_cli("config", "check", "--config", str(bad), cwd=tmp_path))
    missing = tmp_path / "missing.toml"
    missing.write_text(cfg_path.read_text().replace("CANARY_COHERE", "CANARY_NOT_SET"))
    cli.append(run_cli("config", "check", "--config", str(missing), cwd=tmp_path))
    assert "-> 0" in cli[0] and "-> 1" in cli[-2] and "-> 1" in cli[-1], cli
    assert (out / "r.html").stat().st_size > 1000
    seen += cli
    for exc in errors_seen:
        seen += texts_of(exc)
    seen.append(caplog.text)
    seen += [repr(r.args) + repr(getattr(r, "__dict__", {})) for r in caplog.records]
    captured = capsys.readouterr()
    seen += [captured.out, captured.err]
    files = files_under(tmp_path)
    assert any(name.endswith("ledger.db") for name, _ in files)
    assert any(name.endswith(".html") for name, _ in files)

    blob = "\n".join(seen)
    raw = b"\n".join(data for _, data in files)
    for name, canary in canaries.items():
        assert canary not in blob, f"{name} leaked"
        assert canary.encode() not in raw, f"{name} leaked into a file"
    # PII: the raw user identifier is never written; the ledger has its keyed hash
    assert b"alice@example.com" not in raw
    records = read_records(f"sqlite:///{tmp_path / 'ledger.db'}")
    assert records and all(r.key_hash is None or len(r.key_hash) >= 16 for r in records)
    assert {r.key_hash for r in records if r.kind == "call"} - {None}


def test_pii_never_reaches_telemetry() -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from portal.metering.meter import Meter
    from portal.metering.otel import Telemetry

    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter = Meter(
        kinds={"a": "sim"},
        telemetry=Telemetry(tp, MeterProvider(metric_readers=[reader]), kinds={"a": "sim"}),
    )
    cfg = {
        "portal": {"ledger": "none"},
        "providers": {"a": {"kind": "sim", "options": {"seed": 1, "time_scale": 0}}},
        "features": {"f": {"primary": "a:sim-small"}},
    }
    with portal.Client(cfg, meter=meter) as client:
        client.chat(
            feature="f", messages=[portal.user("hi")], key="alice@example.com", tenant="acme"
        )
    dump = repr([(s.name, dict(s.attributes or {})) for s in spans.get_finished_spans()])
    dump += repr(reader.get_metrics_data())
    assert spans.get_finished_spans()
    assert "alice@example.com" not in dump


# ----------------------------------------------------------------------------------- TLS


def test_tls_verification_is_on_by_default() -> None:
    cfg = portal.config.load_config({"providers": {"oa": {"kind": "openai"}}})
    assert cfg.providers["oa"].verify_tls is True
    from portal import _http

    client = _http.new_sync_client()
    assert client._transport._pool._ssl_context.verify_mode.name == "CERT_REQUIRED"  # type: ignore[attr-defined]
    client.close()


def test_disabling_tls_verification_is_loud(caplog: pytest.LogCaptureFixture) -> None:
    cfg = {
        "portal": {"ledger": "none"},
        "providers": {"oa": {"kind": "openai", "api_key": "sk-x", "verify_tls": False}},
        "features": {"f": {"primary": "oa:gpt-4o-mini"}},
    }
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        client = portal.Client(cfg)
    messages = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    expected = (
        "portal: TLS certificate verification is DISABLED for provider 'oa' (verify_tls = false): "
        "traffic and API keys can be intercepted. Only do this against local test servers."
    )
    assert expected in messages, messages
    assert sum(m == expected for m in messages) == 2  # one warning and one log record
    client.close()


@pytest.mark.parametrize(
    "url", ["ftp://x.example/v1", "file:///etc/passwd", "127.0.0.1:8000/v1", "//x/v1"]
)
def test_base_urls_must_be_http(url: str) -> None:
    with pytest.raises(portal.ConfigError) as info:
        portal.Client({"providers": {"oa": {"kind": "openai", "base_url": url}}}, ledger=None)
    assert str(info.value) == (
        f"config: providers.oa.base_url: must start with http:// or https://, got {url!r}"
    )


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_redirects_are_not_followed(server: BadServer, mode: str) -> None:
    """A 307 to another host would carry the Authorization header there: portal stops at the
    redirect and reports an error; the other host never sees a request."""
    import anyio

    cfg = {
        "portal": {"ledger": "none"},
        "providers": {
            "oa": {
                "kind": "openai",
                "base_url": server.url("redirect"),
                "api_key": "sk-redirect-test",
            }
        },
        "features": {"f": {"primary": "oa:m", "retry": {"attempts": 1}}},
    }
    before = len(server.seen)
    with pytest.raises(portal.ProviderError):
        if mode == "sync":
            with portal.Client(cfg) as client:
                client.chat(feature="f", messages=[portal.user("hi")])
        else:

            async def main() -> None:
                async with portal.AsyncClient(cfg) as client:
                    await client.chat(feature="f", messages=[portal.user("hi")])

            anyio.run(main)
    new = server.seen[before:]
    assert [r["_path"] for r in new] == ["/redirect/v1/chat/completions"]
    assert all(r.get("host", "").startswith("127.0.0.1") for r in new)
