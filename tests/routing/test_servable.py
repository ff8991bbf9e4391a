"""Every target of a call's route is checked before the first attempt: a target whose vendor
cannot serve the call's own output schema or tools is left out (with why, on the Response),
instead of failing the call when a failover reaches it; only when no target can serve the
call does it fail, with a `ContractError` naming the field and the fix."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

import portal
from portal import testing
from portal.contracts.tools import ToolSpec
from portal.errors import ContractError, ProviderError

#: Gemini cannot inline a recursive reference; OpenAI's strict mode takes it
TREE = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "children": {"type": "array", "items": {"$ref": "#"}},
    },
    "required": ["name", "children"],
    "additionalProperties": False,
}
#: Gemini's function declarations have no strict flag
STRICT_TOOL = ToolSpec(
    "lookup_order",
    "Find an order",
    {
        "type": "object",
        "properties": {"order_id": {"type": "string"}},
        "required": ["order_id"],
        "additionalProperties": False,
    },
    strict=True,
)
GEMINI = "g:gemini-2.0-flash"


class Counting(httpx2.MockTransport):
    """A vendor that must never be asked: counts requests, answers 500."""

    def __init__(self) -> None:
        self.requests = 0

        def handler(request: httpx2.Request) -> httpx2.Response:
            self.requests += 1
            return httpx2.Response(500, json={"error": {"message": "unexpected"}})

        super().__init__(handler)


def _client(primary: str, fallbacks: list[str], script: testing.Script) -> tuple[Any, Counting]:
    gemini = Counting()
    cfg = {
        "portal": {"ledger": "none"},
        "providers": {
            "g": {"kind": "gemini", "api_key": "k"},
            "o": {"kind": "openai", "api_key": "k"},
        },
        "features": {"f": {"primary": primary, "fallbacks": fallbacks}},
    }
    transports = {"g": gemini, "o": testing.ScriptTransport(script)}
    return portal.Client(cfg, transports=transports, ledger=None), gemini


def test_a_primary_that_cannot_serve_the_output_is_skipped_before_any_attempt() -> None:
    script = testing.Script(testing.output({"name": "root", "children": []}))
    client, gemini = _client(GEMINI, ["o:gpt-4o"], script)
    resp = client.chat(feature="f", messages=[portal.user("a tree")], output=TREE)
    assert resp.output == {"name": "root", "children": []}
    assert resp.target == "o:gpt-4o"
    assert [a.target for a in resp.attempts] == ["o:gpt-4o"]
    assert gemini.requests == 0
    assert list(resp.skipped) == [GEMINI]
    assert "$ref" in resp.skipped[GEMINI] and "Gemini" in resp.skipped[GEMINI]
    client.close()


def test_a_fallback_that_cannot_serve_the_output_does_not_replace_the_real_error() -> None:
    # before: the primary failed, failover reached Gemini, and the call ended in a
    # ContractError about Gemini's schema subset instead of the primary's failure
    script = testing.Script(testing.error(500), testing.error(500), testing.error(500))
    client, gemini = _client("o:gpt-4o", [GEMINI], script)
    with pytest.raises(ProviderError) as err:
        client.chat(feature="f", messages=[portal.user("a tree")], output=TREE)
    assert err.value.status == 500
    assert gemini.requests == 0
    client.close()


def test_a_target_that_cannot_serve_the_calls_tools_is_skipped() -> None:
    script = testing.Script(testing.text("no tool needed"))
    client, gemini = _client(GEMINI, ["o:gpt-4o"], script)
    resp = client.chat(feature="f", messages=[portal.user("hi")], tools=[STRICT_TOOL])
    assert resp.target == "o:gpt-4o" and gemini.requests == 0
    assert "strict" in resp.skipped[GEMINI]
    sent = script.requests[0].body
    assert sent["tools"][0]["function"]["name"] == "lookup_order"
    client.close()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"output": TREE}, "output="), ({"tools": [STRICT_TOOL]}, "tools=")],
)
def test_when_no_target_can_serve_the_call_the_error_names_the_field(
    kwargs: dict[str, Any], field: str
) -> None:
    client, gemini = _client(GEMINI, [], testing.Script())
    with pytest.raises(ContractError) as err:
        client.chat(feature="f", messages=[portal.user("hi")], **kwargs)
    text = str(err.value)
    assert text.startswith(f"{field}: no target of feature 'f' can serve this call")
    assert GEMINI in text and "route the call to a target that serves it" in text
    assert gemini.requests == 0
    client.close()


def test_a_model_call_that_cannot_be_served_names_model_and_the_field() -> None:
    client, gemini = _client(GEMINI, [], testing.Script())
    with pytest.raises(ContractError, match=r"^output=: no target of model= can serve"):
        client.chat(model=GEMINI, messages=[portal.user("hi")], output=TREE)
    assert gemini.requests == 0
    client.close()


def test_the_async_client_skips_the_same_way() -> None:
    import anyio

    gemini = Counting()
    script = testing.Script(testing.output({"name": "root", "children": []}))
    cfg = {
        "portal": {"ledger": "none"},
        "providers": {
            "g": {"kind": "gemini", "api_key": "k"},
            "o": {"kind": "openai", "api_key": "k"},
        },
        "features": {"f": {"primary": GEMINI, "fallbacks": ["o:gpt-4o"]}},
    }

    async def go() -> Any:
        async with portal.AsyncClient(
            cfg, transports={"g": gemini, "o": testing.ScriptTransport(script)}, ledger=None
        ) as client:
            return await client.chat(feature="f", messages=[portal.user("t")], output=TREE)

    resp = anyio.run(go)
    assert resp.target == "o:gpt-4o" and GEMINI in resp.skipped and gemini.requests == 0


def test_a_verdict_is_kept_per_target_schema_and_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    script = testing.Script(
        testing.output({"name": "a", "children": []}), testing.output({"name": "b", "children": []})
    )
    client, gemini = _client(GEMINI, ["o:gpt-4o"], script)
    adapter = client._core.adapters.get("g")
    built: list[str] = []
    build = adapter.build_chat

    def counting(req: Any, model: str) -> Any:
        built.append(model)
        return build(req, model)

    monkeypatch.setattr(adapter, "build_chat", counting)
    for _ in range(2):
        resp = client.chat(feature="f", messages=[portal.user("a tree")], output=TREE)
        assert list(resp.skipped) == [GEMINI]
    assert len(built) == 1  # the second call with the same schema asked the cache
    assert gemini.requests == 0
    client.close()
