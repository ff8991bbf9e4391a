"""A guard that asks a vendor's moderation endpoint (OpenAI ``POST /v1/moderations``).

The request goes through a configured provider of a `portal.Client`: its base URL, its API
key and its HTTP client (with whatever transport the app gave it), so no key or URL is
written twice. The call is synchronous and adds a network round trip to each checked stage;
use it where a vendor's classifier is worth that latency, next to the local guards::

    mod = ModerationGuard(portal.Client.from_config(), provider="openai")
    client.chat(feature="chat", messages=msgs, safety=["pii", mod])
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import portal._http as _http
from portal.contracts.messages import Message
from portal.errors import ConfigError, InvalidResponse
from portal.layers.safety import Action, Decision, GuardResult, Stage, Vault
from portal.wire import WireReply

__all__ = ["ModerationGuard"]


class ModerationGuard:
    """Blocks (or flags, ``mode="flag"``) text the moderation model flags.

    ``threshold`` (0-1) blocks on any category score at or above it even when the vendor did
    not flag; ``categories`` limits the check to those names (e.g. ``["violence"]``).
    """

    def __init__(
        self,
        client: Any,
        *,
        provider: str = "openai",
        model: str = "omni-moderation-latest",
        mode: str = "block",
        threshold: float | None = None,
        categories: Iterable[str] | None = None,
        roles: Iterable[str] = ("user",),
        output: bool = True,
        timeout_s: float = 10.0,
        name: str = "moderation",
    ) -> None:
        send = getattr(client, "_http", None)
        core = getattr(client, "_core", None)
        if send is None or core is None or _is_async(client):
            raise ConfigError(
                f"{name}: pass a portal.Client (sync); guards run while a call is prepared"
            )
        if mode not in ("block", "flag"):
            raise ConfigError(f"{name}.mode: {mode!r} is not one of 'block', 'flag'")
        if threshold is not None and not 0 < threshold <= 1:
            raise ConfigError(f"{name}.threshold: {threshold!r} must be in (0, 1]")
        self.name = name
        self.client = client
        self.provider = provider
        self.model = model
        self.mode = mode
        self.threshold = threshold
        self.categories = frozenset(categories) if categories is not None else None
        self.roles = tuple(roles)
        self.output = output
        self.timeout_s = timeout_s
        self._adapter = core.adapters.get(provider)  # ConfigError for an unknown provider

    def __repr__(self) -> str:
        return f"ModerationGuard(provider={self.provider!r}, model={self.model!r})"

    def _moderate(self, texts: list[str]) -> list[dict[str, Any]]:
        adapter = self._adapter
        wire = adapter.json_request(
            "/moderations", {"model": self.model, "input": texts}, adapter.auth_headers()
        )
        http = self.client._http(self.provider)
        # the whole exchange ends within timeout_s, however slowly the reply arrives, and
        # its body is read under the provider's size cap
        until = time.perf_counter() + self.timeout_s
        _http.bound(until)
        try:
            resp = http.send(_http.to_httpx(wire, self.timeout_s), stream=True)
            limit = self.client._core.reply_limit(self.provider)
            body = _http.read_by(resp, limit, self.provider, until)
        except _http.httpx2.HTTPError as exc:
            raise _http.map_exception(exc, self.provider, until) from exc
        finally:
            _http.bound(None)
        reply = WireReply(resp.status_code, resp.headers, body)
        if reply.status >= 400:
            raise adapter.parse_error(reply, self.model)
        results = reply.json().get("results")
        if not isinstance(results, list) or len(results) != len(texts):
            raise InvalidResponse(
                "moderation reply has no 'results' list matching the inputs",
                provider=self.provider,
                model=self.model,
            )
        return results

    def _decide(self, stage: Stage, texts: list[str]) -> Decision:
        texts = [t for t in texts if t.strip()]
        if not texts:
            return Decision(self.name, "allow", stage)
        hits: dict[str, int] = {}
        best = 0.0
        for r in self._moderate(texts):
            flagged = {k for k, v in (r.get("categories") or {}).items() if v}
            scores = r.get("category_scores") or {}
            if self.threshold is not None:
                flagged |= {k for k, s in scores.items() if float(s) >= self.threshold}
            if self.categories is not None:
                flagged &= self.categories
            for k in flagged:
                hits[k] = hits.get(k, 0) + 1
                best = max(best, float(scores.get(k, 0.0)))
        if not hits:
            return Decision(self.name, "allow", stage)
        reason = f"{self.model} flagged the {stage}: {', '.join(sorted(hits))}"
        action: Action = "block" if self.mode == "block" else "flag"
        return Decision(self.name, action, stage, reason, hits, score=best)

    def check_input(self, messages: list[Message], vault: Vault | None = None) -> GuardResult:
        texts = [m.text for m in messages if m.role in self.roles]
        return GuardResult((self._decide("input", texts),), messages=messages, vault=vault)

    def check_output(self, text: str, vault: Vault | None = None) -> GuardResult:
        if not self.output:
            return GuardResult((Decision(self.name, "allow", "output"),), text=text, vault=vault)
        return GuardResult((self._decide("output", [text]),), text=text, vault=vault)


def _is_async(client: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(getattr(client, "chat", None))
