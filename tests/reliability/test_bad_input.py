"""Bad input from users, at every public entry point, with the exact error a caller reads.

Extends tests/core (message shapes, tool specs and output schemas at the contract level, config
files) with what goes through the clients: call arguments, sampling parameters, tool choice,
tools and output given to `chat`/`stream`, constructor arguments and config of wrong types.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import portal

CFG: dict[str, Any] = {
    "portal": {"ledger": "none"},
    "providers": {"a": {"kind": "sim", "options": {"seed": 1, "time_scale": 0}}},
    "features": {"f": {"primary": "a:sim-small"}},
}
M = [portal.user("hi")]
RECURSIVE = {"type": "object", "properties": {"child": {"$ref": "#"}}}

CHAT_CASES: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    (
        "no messages",
        {"messages": None},
        portal.ContractError,
        "pass messages= (a list of messages) or input= for a contract",
    ),
    (
        "one dict, not a list",
        {"messages": {"role": "user", "content": "x"}},
        portal.ContractError,
        "messages: expected a list of messages, got dict; wrap it, e.g. messages=[portal.user('hi')]",
    ),
    (
        "list of strings",
        {"messages": ["hi"]},
        portal.ContractError,
        "messages[0]: expected a portal.Message or a dict with 'role' and 'content', got str",
    ),
    (
        "unknown role",
        {"messages": [{"role": "robot", "content": "x"}]},
        portal.ContractError,
        "messages[0].role: unknown role 'robot'; expected one of system, user, assistant, tool",
    ),
    (
        "input without a contract",
        {"messages": None, "input": {"q": 1}},
        portal.ContractError,
        "input= needs a feature with a contract (its prompt templates and input schema); pass messages= instead",
    ),
    (
        "misspelt parameter",
        {"temperatur": 0.2},
        portal.ContractError,
        "chat: unknown argument(s) temperatur; sampling parameters are max_tokens, provider_options, seed, stop, temperature, top_p",
    ),
    (
        "max_tokens as text",
        {"max_tokens": "10"},
        portal.ContractError,
        "max_tokens: expected a positive integer, got '10'",
    ),
    (
        "max_tokens zero",
        {"max_tokens": 0},
        portal.ContractError,
        "max_tokens: expected a positive integer, got 0",
    ),
    (
        "temperature out of range",
        {"temperature": 5},
        portal.ContractError,
        "temperature: expected a number from 0 to 2, got 5",
    ),
    (
        "top_p out of range",
        {"top_p": 1.5},
        portal.ContractError,
        "top_p: expected a number from 0 to 1, got 1.5",
    ),
    (
        "stop as a string",
        {"stop": "END"},
        portal.ContractError,
        "stop: expected a list of strings, got 'END'",
    ),
    ("seed as text", {"seed": "7"}, portal.ContractError, "seed: expected an integer, got '7'"),
    (
        "tool_choice without tools",
        {"tool_choice": "required"},
        portal.ContractError,
        "tool_choice='required' needs tools=; pass the tools to call",
    ),
    (
        "tool_choice of an unknown tool",
        {"tool_choice": "delete_all", "tools": [portal.ToolSpec("lookup")]},
        portal.ContractError,
        "tool_choice: 'delete_all' is not 'auto', 'none', 'required' or one of the tools (lookup)",
    ),
    (
        "tool_choice as a dict",
        {"tool_choice": {"name": "x"}, "tools": [portal.ToolSpec("x")]},
        portal.ContractError,
        "tool_choice: expected 'auto', 'none', 'required' or a tool name, got {'name': 'x'}",
    ),
    (
        "tool that is not a tool",
        {"tools": [42]},
        portal.ContractError,
        "tools[0]: expected a function, a pydantic model, a ToolSpec or a dict, got int",
    ),
    (
        "output schema that is not a schema",
        {"output": {"type": "objekt"}},
        portal.ContractError,
        "output: invalid JSON Schema at /type: 'objekt' is not a JSON Schema type (JSON Schema "
        "types: string, number, integer, boolean, object, array, null)",
    ),
    (
        "no feature and no model",
        {"feature": None},
        portal.ConfigError,
        "pass feature= (a feature from the config) or model='provider:model'",
    ),
    (
        "model id without provider",
        {"feature": None, "model": "gpt-4o"},
        portal.ConfigError,
        "model id 'gpt-4o' must be 'provider:model', e.g. 'openai:gpt-4.1-mini'",
    ),
    ("unknown feature", {"feature": "g"}, portal.ConfigError, "unknown feature 'g' (features: f)"),
]


def _kwargs(given: dict[str, Any]) -> dict[str, Any]:
    kw: dict[str, Any] = {"feature": "f", "messages": M}
    kw.update(given)
    return {k: v for k, v in kw.items() if v is not None}


@pytest.mark.parametrize(
    ("case", "given", "cls", "message"), CHAT_CASES, ids=[c[0] for c in CHAT_CASES]
)
@pytest.mark.parametrize("op", ["sync chat", "sync stream", "async chat", "async stream"])
def test_bad_call_arguments(
    op: str, case: str, given: dict[str, Any], cls: type[Exception], message: str
) -> None:
    kw = _kwargs(given)
    if "stream" in op:
        message = message.replace("chat: unknown argument", "stream: unknown argument")
    with pytest.raises(cls) as info:
        if op == "sync chat":
            with portal.Client(CFG) as c:
                c.chat(**kw)
        elif op == "sync stream":
            with portal.Client(CFG) as c:
                list(c.stream(**kw))
        else:

            async def main() -> None:
                async with portal.AsyncClient(CFG) as c:
                    if op == "async chat":
                        await c.chat(**kw)
                    else:
                        [e async for e in c.stream(**kw)]

            anyio.run(main)
    assert str(info.value) == message


def test_stream_refuses_a_misspelt_argument() -> None:
    with portal.Client(CFG) as c, pytest.raises(portal.ContractError) as info:
        list(c.stream(feature="f", messages=M, max_step=3))  # type: ignore[call-arg]
    assert str(info.value) == (
        "stream: unknown argument(s) max_step; sampling parameters are max_tokens, "
        "provider_options, seed, stop, temperature, top_p"
    )


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([], "embed: inputs must be a non-empty list of strings"),
        ([1, 2], "embed: inputs must be a non-empty list of strings"),
    ],
)
def test_bad_embed_inputs(inputs: Any, message: str) -> None:
    with portal.Client(CFG) as c, pytest.raises(portal.ContractError) as info:
        c.embed(feature="f", inputs=inputs)
    assert str(info.value) == message


def test_recursive_output_schema_is_validated_recursively() -> None:
    """A recursive schema is a valid schema; replies are validated through the recursion."""
    spec = portal.OutputSpec.of(RECURSIVE)
    assert spec.parse('{"child": {"child": {}}}') == {"child": {"child": {}}}
    with pytest.raises(portal.ContractError) as info:
        spec.parse('{"child": {"child": 3}}')
    assert (
        str(info.value) == "output does not match output: /child/child: 3 is not of type 'object'"
    )


def test_non_serializable_tool_result_goes_back_as_an_error() -> None:
    """A tool returning something JSON cannot carry does not crash the loop: the model gets
    the error as the tool's result (and the caller's call completes)."""
    import portal.contracts.messages as msgs

    with pytest.raises(portal.ContractError) as info:
        msgs.tool_result("c1", {1, 2})
    assert str(info.value).startswith("tool_result for call 'c1': result is not JSON-serializable")


@pytest.mark.parametrize(
    ("source", "cls", "message"),
    [
        (
            42,
            portal.ConfigError,
            "config: expected a path to portal.toml, a dict or a PortalConfig, got int",
        ),
        (
            [1],
            portal.ConfigError,
            "config: expected a path to portal.toml, a dict or a PortalConfig, got list",
        ),
        (
            "/nonexistent/portal.toml",
            portal.ConfigError,
            "/nonexistent/portal.toml: no such config file",
        ),
        (
            {"providers": {"a": {"kind": "sim", "timeout_s": "fast"}}},
            portal.ConfigError,
            "config: providers.a.timeout_s: expected a number, got 'fast'",
        ),
        (
            {
                "providers": {"a": {"kind": "sim"}},
                "features": {"f": {"primary": "a:m", "retry": {"attempts": 0}}},
            },
            portal.ConfigError,
            "config: features.f.retry.attempts: must be >= 1, got 0",
        ),
        ({"features": [1]}, portal.ConfigError, "config: features: expected a table, got list"),
        (
            {"portal": {"state": "mysql://x"}},
            portal.ConfigError,
            "config: portal.state: must be 'memory' or a redis:// URL, got 'mysql://x'",
        ),
    ],
)
@pytest.mark.parametrize("cls_name", ["Client", "AsyncClient"])
def test_bad_config(cls_name: str, source: Any, cls: type[Exception], message: str) -> None:
    with pytest.raises(cls) as info:
        getattr(portal, cls_name)(source, ledger=None)
    assert str(info.value) == message


def test_bad_ledger_url() -> None:
    with pytest.raises(portal.ConfigError) as info:
        portal.Client(CFG, ledger="ftp://x")
    assert str(info.value) == (
        "ledger 'ftp://x': unknown sink scheme 'ftp'; supported: sqlite:///path.db, "
        "jsonl:///path.jsonl, postgresql://user@host/db"
    )
