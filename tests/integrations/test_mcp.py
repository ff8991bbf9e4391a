"""portal.mcp against real MCP servers written with the mcp SDK: started by the test as a
stdio subprocess and as a streamable-HTTP server on 127.0.0.1. Their tools run in portal's
tool loop on the sim vendor; the contract decides which are offered; a server that dies,
hangs, or serves a schema a target cannot take gives a portal error naming it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import portal
import portal.mcp
from tests.helpers import sim_config

SERVER = textwrap.dedent(
    '''
    import os, sys, time
    from pydantic import BaseModel
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    mcp = MCPServer("calc")

    class Node(BaseModel):
        label: str
        children: list["Node"] = []

    @mcp.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @mcp.tool()
    def shout(text: str) -> str:
        """Upper-case a text."""
        return text.upper()

    @mcp.tool()
    def fail(reason: str) -> str:
        """Always reports an error."""
        raise ToolError("refused: " + reason)

    @mcp.tool()
    def hang(seconds: int) -> str:
        """Sleeps for a long time."""
        time.sleep(600)
        return "late"

    @mcp.tool()
    def die(code: int) -> str:
        """Kills the server process."""
        print("fatal: the disk is on fire", file=sys.stderr, flush=True)
        os._exit(code)

    @mcp.tool()
    def count_nodes(tree: Node) -> int:
        """Counts the nodes of a tree (a recursive schema)."""
        return 1

    @mcp.tool(name="files.read")
    def files_read(path: str) -> str:
        """A name with a dot."""
        return path

    if __name__ == "__main__":
        if sys.argv[1:2] == ["http"]:
            mcp.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
        else:
            mcp.run()
    '''
)
CONTRACT = textwrap.dedent(
    """
    name = "calc.answer"
    version = "1.0.0"

    [[tools]]
    name = "add"
    description = "Add two integers."
    [tools.parameters]
    type = "object"
    required = ["a", "b"]
    [tools.parameters.properties.a]
    type = "integer"
    [tools.parameters.properties.b]
    type = "integer"
    """
)


@pytest.fixture(scope="module")
def server_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mcp") / "calc_server.py"
    path.write_text(SERVER)
    return path


@pytest.fixture(scope="module")
def calc(server_file: Path) -> Iterator[portal.mcp.MCPTools]:
    """One stdio server for the module, opened with ``with`` (background loop): its tools
    are plain functions, usable from both clients."""
    with portal.mcp.stdio([sys.executable, str(server_file)], name="calc", timeout_s=3) as src:
        yield src


def _tool_results(resp: portal.Response) -> list[Any]:
    return [m for m in resp.messages if m.role == "tool"]


def test_stdio_tools_run_in_the_tool_loop_on_sync_and_async_clients(
    calc: portal.mcp.MCPTools,
) -> None:
    assert calc.names()[:2] == ["add", "shout"]
    tools = calc.tools(allow=["add"])
    assert tools[0].parameters["required"] == ["a", "b"]
    with portal.Client(sim_config(), ledger=None) as client:
        resp = client.chat(feature="f", messages=[portal.user("add 2 and 3")], tools=tools)
    call = resp.messages[1].tool_calls[0]
    result = _tool_results(resp)[0]
    assert call.name == "add" and not result.is_error
    assert result.text == str(call.arguments["a"] + call.arguments["b"])
    assert "Based on the tool result" in resp.text

    async def run() -> portal.Response:
        async with portal.AsyncClient(sim_config(), ledger=None) as client:
            return await client.chat(
                feature="f", messages=[portal.user("shout hi")], tools=calc.tools(allow=["shout"])
            )

    resp = anyio.run(run)
    call = resp.messages[1].tool_calls[0]
    assert _tool_results(resp)[0].text == call.arguments["text"].upper()


def test_stdio_opened_async_gives_coroutine_tools(server_file: Path) -> None:
    async def run() -> tuple[portal.Response, list[portal.StreamEvent]]:
        async with (
            portal.mcp.stdio([sys.executable, str(server_file)], name="calc") as src,
            portal.AsyncClient(sim_config(), ledger=None) as client,
        ):
            tools = src.tools(allow=["add"])
            resp = await client.chat(feature="f", messages=[portal.user("add")], tools=tools)
            events = [
                e
                async for e in client.stream(feature="f", messages=[portal.user("x")], tools=tools)
            ]
            return resp, events

    resp, events = anyio.run(run)
    call = resp.messages[1].tool_calls[0]
    assert _tool_results(resp)[0].text == str(call.arguments["a"] + call.arguments["b"])
    results = [e for e in events if e.type == "tool_result"]
    assert results and results[0].tool_call.name == "add"


def test_tool_errors_and_timeouts_go_back_to_the_model(calc: portal.mcp.MCPTools) -> None:
    with portal.Client(sim_config(), ledger=None) as client:
        failed = client.chat(feature="f", messages=[portal.user("x")], tools=calc.tools(["fail"]))
        started = time.perf_counter()
        slow = client.chat(feature="f", messages=[portal.user("x")], tools=calc.tools(["hang"]))
        elapsed = time.perf_counter() - started
    err = _tool_results(failed)[0]
    assert err.is_error and "MCP server 'calc'" in err.text and "tool 'fail' failed" in err.text
    assert "refused: " in err.text  # the server's own message reaches the model
    timed_out = _tool_results(slow)[0]
    assert timed_out.is_error and "no answer within 3s" in timed_out.text
    assert elapsed < 20  # bounded by the source's timeout_s, not the server's 600 s sleep
    # the source still works after a timed-out call
    assert calc.tools(["add"])[0].function(a=1, b=2) == "3"


def test_contract_tools_are_the_allow_list(calc: portal.mcp.MCPTools, tmp_path: Path) -> None:
    (tmp_path / "calc.toml").write_text(CONTRACT)
    cfg = sim_config(
        f={"primary": "a:m1", "contract": str(tmp_path / "calc.toml")},
        g={"primary": "a:m1"},
    )
    with portal.Client(cfg, ledger=None) as client:
        allowed = calc.tools(client=client, feature="f")
        assert [t.name for t in allowed] == ["add"]
        with pytest.raises(portal.ContractError, match=r"allows tools add.*offers none"):
            calc.tools(["shout"], client=client, feature="f")
        everything = calc.tools(["add", "shout"], client=client, feature="g")
        assert [t.name for t in everything] == ["add", "shout"]
        resp = client.chat(feature="f", messages=[portal.user("add")], tools=allowed)
    assert resp.messages[1].tool_calls[0].name == "add"


def test_untranslatable_schemas_name_server_tool_and_target(calc: portal.mcp.MCPTools) -> None:
    with pytest.raises(portal.ContractError) as info:
        calc.tools(["files.read"])
    assert "MCP server 'calc': tool 'files.read'" in str(info.value)
    assert "allow=" in str(info.value)
    cfg = {
        "portal": {"ledger": "none"},
        "providers": {"gem": {"kind": "gemini", "api_key": "k"}, **sim_config()["providers"]},
        "features": {"t": {"primary": "a:m1", "fallbacks": ["gem:gemini-2.5-flash"]}},
    }
    with portal.Client(cfg, ledger=None) as client:
        with pytest.raises(portal.ContractError) as info:
            calc.tools(["add", "count_nodes"], client=client, feature="t")
        assert calc.tools(["add"], client=client, feature="t")  # the plain one passes
    message = str(info.value)
    assert "MCP server 'calc'" in message and "'count_nodes' -> gem:gemini-2.5-flash" in message
    assert "recursive" in message and "'add'" not in message


def test_unknown_tool_names_in_allow_are_refused(calc: portal.mcp.MCPTools) -> None:
    with pytest.raises(portal.ContractError, match=r"no tool\(s\) 'nope'; it has 'add'"):
        calc.tools(["nope"])


def test_a_server_that_dies_mid_call_is_named_and_fails_fast_after(server_file: Path) -> None:
    with (
        portal.mcp.stdio([sys.executable, str(server_file)], name="calc") as src,
        portal.Client(sim_config(), ledger=None) as client,
    ):
        resp = client.chat(feature="f", messages=[portal.user("x")], tools=src.tools(["die"]))
        died = _tool_results(resp)[0]
        assert died.is_error
        assert "MCP server 'calc'" in died.text and "tool 'die'" in died.text
        assert "the disk is on fire" in died.text  # the server's last stderr line
        started = time.perf_counter()
        with pytest.raises(portal.mcp.MCPServerError, match="is gone"):
            src.tools(["add"])
        assert time.perf_counter() - started < 1


def test_a_server_that_cannot_start_or_never_answers(tmp_path: Path) -> None:
    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nsys.stderr.write('missing CALC_TOKEN\\n')\nsys.exit(2)\n")
    with (
        pytest.raises(portal.mcp.MCPServerError) as info,
        portal.mcp.stdio([sys.executable, str(crash)], name="crashy", connect_timeout_s=30),
    ):
        pass
    assert "MCP server 'crashy'" in str(info.value) and "missing CALC_TOKEN" in str(info.value)
    mute = tmp_path / "mute.py"
    mute.write_text("import time\ntime.sleep(600)\n")
    started = time.perf_counter()
    with pytest.raises(portal.mcp.MCPServerError, match=r"no answer within 2s"):

        async def run() -> None:
            async with portal.mcp.stdio([sys.executable, str(mute)], connect_timeout_s=2):
                pass

        anyio.run(run)
    assert time.perf_counter() - started < 15


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def http_server(server_file: Path) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(server_file), "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("the MCP HTTP server did not start")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.kill()
        proc.wait()


def test_streamable_http_server(http_server: str) -> None:
    async def run() -> portal.Response:
        async with (
            portal.mcp.http(http_server, headers={"Authorization": "Bearer s3cret"}) as src,
            portal.AsyncClient(sim_config(), ledger=None) as client,
        ):
            assert "s3cret" not in repr(src) and src.name == "127.0.0.1"
            return await client.chat(
                feature="f", messages=[portal.user("add")], tools=src.tools(["add"])
            )

    resp = anyio.run(run)
    call = resp.messages[1].tool_calls[0]
    assert _tool_results(resp)[0].text == str(call.arguments["a"] + call.arguments["b"])


def test_http_server_not_listening() -> None:
    url = f"http://user:pw@127.0.0.1:{_free_port()}/mcp"
    with (
        pytest.raises(portal.mcp.MCPServerError) as info,
        portal.mcp.http(url, name="docs", connect_timeout_s=10),
    ):
        pass
    assert "MCP server 'docs'" in str(info.value) and "pw" not in str(info.value)


def _anthropic_reply(n: int) -> dict[str, Any]:
    """Anthropic Messages replies as documented: a tool_use turn, then the answer."""
    usage = {"input_tokens": 50, "output_tokens": 10}
    if n == 0:
        content = [{"type": "tool_use", "id": "toolu_1", "name": "add", "input": {"a": 2, "b": 3}}]
        stop = "tool_use"
    else:
        content, stop = [{"type": "text", "text": "2 + 3 = 5"}], "end_turn"
    return {
        "id": f"msg_{n}",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


def _gemini_reply(n: int) -> dict[str, Any]:
    """Gemini generateContent replies as documented: a functionCall, then the answer."""
    part: dict[str, Any] = (
        {"functionCall": {"name": "add", "args": {"a": 2, "b": 3}}} if n == 0 else {"text": "5"}
    )
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 5, "totalTokenCount": 45},
        "modelVersion": "gemini-2.5-flash",
    }


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
def test_mcp_tools_reach_other_vendors_in_their_wire_format(
    calc: portal.mcp.MCPTools, kind: str
) -> None:
    import httpx2

    bodies: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        bodies.append(json.loads(request.content))
        reply = _anthropic_reply if kind == "anthropic" else _gemini_reply
        return httpx2.Response(200, json=reply(len(bodies) - 1))

    model = "claude-haiku-4-5" if kind == "anthropic" else "gemini-2.5-flash"
    cfg = {
        "portal": {"ledger": "none"},
        "providers": {kind: {"api_key": "test-key"}},
        "features": {"calc": {"primary": f"{kind}:{model}"}},
    }
    transports = {kind: httpx2.MockTransport(handler)}
    with portal.Client(cfg, ledger=None, transports=transports) as client:
        tools = calc.tools(["add"], client=client, feature="calc")
        resp = client.chat(feature="calc", messages=[portal.user("2+3?")], tools=tools)
    assert _tool_results(resp)[0].text == "5"  # the MCP server computed it
    first, second = bodies
    if kind == "anthropic":
        sent = first["tools"][0]
        assert sent["name"] == "add" and sent["input_schema"]["required"] == ["a", "b"]
        result = second["messages"][-1]["content"][0]
        assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_1"
        assert "5" in json.dumps(result["content"])
    else:
        decl = first["tools"][0]["functionDeclarations"][0]
        assert decl["name"] == "add" and set(decl["parameters"]["properties"]) == {"a", "b"}
        response = second["contents"][-1]["parts"][0]["functionResponse"]
        assert response["name"] == "add" and "5" in json.dumps(response["response"])


def test_mcp_tool_calls_are_metered_as_tool_spans(calc: portal.mcp.MCPTools) -> None:
    """Each tool the loop runs (an MCP tool like any other) is an ``execute_tool`` span,
    with the error's class when it failed."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from portal.metering.meter import Meter
    from portal.metering.otel import Telemetry

    spans = InMemorySpanExporter()
    tracer = TracerProvider()
    tracer.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = Telemetry(tracer, MeterProvider(), kinds={"a": "sim", "b": "sim"})

    def shout(text: str) -> str:
        """Upper-case a text, locally."""
        return text.upper()

    async def run() -> None:
        meter = Meter(kinds={"a": "sim", "b": "sim"}, telemetry=telemetry)
        async with portal.AsyncClient(sim_config(), ledger=None, meter=meter) as client:
            for tools in (calc.tools(["add"]), calc.tools(["fail"]), [shout]):
                await client.chat(feature="f", messages=[portal.user("x")], tools=tools)

    anyio.run(run)
    with portal.Client(
        sim_config(), ledger=None, meter=Meter(kinds={"a": "sim"}, telemetry=telemetry)
    ) as client:  # the sync driver records them too
        client.chat(feature="f", messages=[portal.user("x")], tools=calc.tools(["shout"]))
    tool_spans = {
        s.name: s for s in spans.get_finished_spans() if s.name.startswith("execute_tool")
    }
    assert set(tool_spans) == {"execute_tool add", "execute_tool fail", "execute_tool shout"}
    assert "error.type" not in (tool_spans["execute_tool add"].attributes or {})
    assert tool_spans["execute_tool fail"].attributes["error.type"] == "MCPToolError"
    assert tool_spans["execute_tool add"].end_time > tool_spans["execute_tool add"].start_time
    names = [s.name for s in spans.get_finished_spans() if s.name.startswith("execute_tool")]
    assert names.count("execute_tool shout") == 2  # the local tool (async) and MCP's (sync)
