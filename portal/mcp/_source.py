"""An MCP server as a source of portal tools.

`MCPTools` connects to one server (a stdio subprocess or a streamable-HTTP endpoint), lists
its tools once, and hands them out as `ToolSpec` objects whose functions call the server.
portal's tool loop then runs them like any other tool: arguments validated against the
server's schema, failures and timeouts sent back to the model as tool errors, parallel calls
run concurrently. Used with ``async with`` its tools are coroutine functions (for
`portal.AsyncClient`); with ``with`` the session runs on a background event loop and its
tools are plain functions (for `portal.Client`, and usable from `AsyncClient` too).
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from portal.contracts.tools import ToolSpec
from portal.errors import ConfigError, ContractError, PortalError

__all__ = ["MCPServerError", "MCPToolError", "MCPTools"]

#: the stderr lines of a stdio server quoted in an error
_STDERR_LINES = 5


class MCPServerError(PortalError):
    """The MCP server could not be reached, died, or broke the protocol. ``server`` names it."""

    def __init__(self, message: str, server: str) -> None:
        super().__init__(message)
        self.server = server


class MCPToolError(PortalError):
    """The server ran the tool and reported an error (``isError``); the model sees the text."""

    def __init__(self, message: str, server: str, tool: str) -> None:
        super().__init__(message)
        self.server = server
        self.tool = tool


class MCPTools:
    """One MCP server's tools. Build it with `portal.mcp.stdio` or `portal.mcp.http`."""

    def __init__(
        self,
        name: str,
        where: str,
        connect: Callable[[Any], Any],
        *,
        timeout_s: float | None,
        connect_timeout_s: float,
        errlog: bool = False,
    ) -> None:
        self.name = name
        self._where = where  # for messages: never holds credentials
        self._connect = connect
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._keep_stderr = errlog
        self._errlog: Any = None  # the server's stderr (stdio), opened per connection
        self._client: Any = None
        self._listed: list[Any] = []
        self._stop: anyio.Event | None = None
        self._tg: Any = None  # the task group of an `async with`
        self._portal_cm: Any = None
        self._loop: Any = None  # the BlockingPortal of a sync `with`
        self._task: Any = None  # the future of `_serve` on that portal
        self._failure: MCPServerError | None = None
        self._dead: str | None = None

    def __repr__(self) -> str:
        state = "open" if self._client is not None else "closed"
        return f"<MCPTools {self.name!r} {self._where} {state}>"

    # -- lifecycle --------------------------------------------------------------------------
    # The session lives in one task (`_serve`) from connect to close, as the mcp SDK's
    # context managers require; `async with` runs it in a task group of the caller's loop,
    # `with` on a background loop (anyio's blocking portal).
    async def __aenter__(self) -> MCPTools:
        tg = anyio.create_task_group()
        await tg.__aenter__()
        try:
            await tg.start(self._serve)
        except BaseException:
            self._stopping()
            with contextlib.suppress(Exception):  # the child's failure is in _failure
                await tg.__aexit__(None, None, None)
            self._close_log()
            if self._failure is not None:
                raise self._failure from None
            raise
        self._tg = tg
        return self

    async def __aexit__(self, *exc: Any) -> None:
        tg, self._tg = self._tg, None
        self._stopping()
        if tg is not None:
            await tg.__aexit__(None, None, None)
        self._close_log()

    def __enter__(self) -> MCPTools:
        from anyio.from_thread import start_blocking_portal

        cm = start_blocking_portal()
        loop = cm.__enter__()
        try:
            self._task, _ = loop.start_task(self._serve)
        except BaseException:
            with contextlib.suppress(Exception):
                cm.__exit__(None, None, None)
            self._close_log()
            if self._failure is not None:
                raise self._failure from None
            raise
        self._loop, self._portal_cm = loop, cm
        return self

    def __exit__(self, *exc: object) -> None:
        loop, cm, task = self._loop, self._portal_cm, self._task
        self._loop = self._portal_cm = self._task = None
        if loop is None:
            return
        try:
            loop.call(self._stopping)
            with contextlib.suppress(Exception):
                task.result(timeout=self.connect_timeout_s)
        finally:
            cm.__exit__(None, None, None)
            self._close_log()

    def _stopping(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def _serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, list the tools, report started, then hold the session until closed. A
        failure before started becomes `_failure` (raised by the opener); after it, the
        server is marked dead so every later tool call fails at once, naming why."""
        from mcp import Client

        self._stop = anyio.Event()
        self._failure = self._dead = None
        if self._keep_stderr and self._errlog is None:
            self._errlog = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        started = False
        try:
            with anyio.CancelScope() as scope:
                scope.deadline = anyio.current_time() + self.connect_timeout_s
                async with Client(
                    self._connect(self._errlog), read_timeout_seconds=self.timeout_s
                ) as client:
                    self._listed = await self._list_all(client)
                    scope.deadline = math.inf
                    self._client = client
                    started = True
                    task_status.started()
                    await self._stop.wait()
            if not started:
                self._failure = MCPServerError(
                    f"MCP server {self.name!r} ({self._where}): no answer within "
                    f"{self.connect_timeout_s:g}s while connecting and listing tools"
                    f"{self._stderr_tail()}",
                    self.name,
                )
        except Exception as exc:
            reason = _reason(exc)
            if not started:
                self._failure = MCPServerError(
                    f"MCP server {self.name!r} ({self._where}): could not connect: "
                    f"{reason}{self._stderr_tail()}",
                    self.name,
                )
                self._failure.__cause__ = exc
            else:
                self._dead = reason
        finally:
            self._client = None
            if not started and self._failure is None:
                self._failure = MCPServerError(
                    f"MCP server {self.name!r} ({self._where}): closed while connecting",
                    self.name,
                )

    async def _list_all(self, client: Any) -> list[Any]:
        tools: list[Any] = []
        cursor = None
        for _ in range(100):  # a paginator that never ends cannot hang the connect
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    def _close_log(self) -> None:
        if self._errlog is not None:
            self._errlog.close()
            self._errlog = None

    # -- tools ------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """The names of the server's tools, as it listed them."""
        self._require_open()
        return [t.name for t in self._listed]

    def tools(
        self,
        allow: Sequence[str] | None = None,
        *,
        client: Any = None,
        feature: str | None = None,
    ) -> list[ToolSpec]:
        """The server's tools as `ToolSpec` objects to pass as ``tools=``.

        - ``allow``: only these tool names (each must exist on the server).
        - ``client`` + ``feature``: the feature's contract decides; when it declares tools,
          only the server's tools it names are returned. Every tool is also checked against
          each target the feature routes to (its schema must be translatable for that
          vendor), so a schema a vendor cannot take fails here, naming server, tool and
          target, not at the first call.
        """
        self._require_open()
        listed = {t.name: t for t in self._listed}
        chosen = list(listed)
        if allow is not None:
            if isinstance(allow, str):
                raise ContractError("allow: expected a list of tool names, got a string")
            missing = [n for n in allow if n not in listed]
            if missing:
                raise ContractError(
                    f"MCP server {self.name!r}: no tool(s) {', '.join(map(repr, missing))}; "
                    f"it has {', '.join(map(repr, listed)) or 'none'}"
                )
            chosen = [n for n in chosen if n in set(allow)]
        if (client is None) != (feature is None):
            raise ContractError("tools(): pass client= and feature= together")
        if feature is not None:
            chosen = _contract_allows(client, feature, self.name, chosen)
        specs = [self._spec(listed[n]) for n in chosen]
        if feature is not None:
            _check_targets(client, feature, self.name, specs)
        return specs

    def _spec(self, tool: Any) -> ToolSpec:
        name = tool.name
        where = f"MCP server {self.name!r}: tool {name!r}"
        schema = tool.input_schema
        if not isinstance(schema, Mapping):
            raise ContractError(f"{where}: its inputSchema is not a JSON object")
        schema = {k: v for k, v in schema.items() if k != "title"}
        schema.setdefault("properties", {})
        function = (
            self._sync_function(name) if self._loop is not None else self._async_function(name)
        )
        try:
            return ToolSpec(name, tool.description or "", schema, function)
        except ContractError as exc:
            raise ContractError(
                f"{where}: portal cannot use this tool ({exc}); leave it out with "
                "allow=[...] or fix the server's schema",
                exc.details,
            ) from None

    def _async_function(self, name: str) -> Callable[..., Any]:
        async def call_mcp_tool(**arguments: Any) -> Any:
            return await self._call(name, arguments)

        call_mcp_tool.__name__ = name
        return call_mcp_tool

    def _sync_function(self, name: str) -> Callable[..., Any]:
        def call_mcp_tool(**arguments: Any) -> Any:
            loop = self._loop
            if loop is None:
                raise MCPServerError(f"MCP server {self.name!r} is closed", self.name)
            return loop.call(self._call, name, arguments)

        call_mcp_tool.__name__ = name
        return call_mcp_tool

    async def _call(self, name: str, arguments: dict[str, Any]) -> Any:
        client = self._client
        where = f"MCP server {self.name!r} ({self._where}), tool {name!r}"
        if self._dead is not None:
            raise MCPServerError(
                f"{where}: the server is gone ({self._dead}){self._stderr_tail()}", self.name
            )
        if client is None:
            raise MCPServerError(f"{where}: the server is closed", self.name)
        try:
            with anyio.fail_after(self.timeout_s) if self.timeout_s else contextlib.nullcontext():
                result = await client.call_tool(name, arguments)
        except TimeoutError:
            raise TimeoutError(f"{where}: no answer within {self.timeout_s:g}s") from None
        except Exception as exc:
            reason = _reason(exc)
            if _is_disconnect(exc):
                self._dead = reason
            raise MCPServerError(f"{where}: {reason}{self._stderr_tail()}", self.name) from exc
        text = _text(result)
        if result.is_error:
            raise MCPToolError(f"{where} failed: {text or 'no details'}", self.name, name)
        structured = result.structured_content
        return structured if structured is not None and not text else (text or structured)

    def _require_open(self) -> None:
        if self._dead is not None:
            raise MCPServerError(
                f"MCP server {self.name!r} ({self._where}) is gone ({self._dead})"
                f"{self._stderr_tail()}; open it again",
                self.name,
            )
        if self._client is None:
            raise MCPServerError(
                f"MCP server {self.name!r} is not open; use it as `async with` (AsyncClient) "
                "or `with` (Client)",
                self.name,
            )

    def _stderr_tail(self) -> str:
        log = self._errlog
        if log is None:
            return ""
        try:
            log.flush()
            log.seek(0)
            lines = [ln.rstrip() for ln in log.read().splitlines() if ln.strip()]
        except (OSError, ValueError):
            return ""
        if not lines:
            return ""
        return "; its stderr ended with: " + " | ".join(lines[-_STDERR_LINES:])[-600:]


def _text(result: Any) -> str:
    parts = []
    for block in result.content or []:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind} {getattr(block, 'mime_type', '')}]")
        elif kind == "resource_link":
            parts.append(f"[resource {getattr(block, 'uri', '')}]")
        elif kind == "resource":
            res = getattr(block, "resource", None)
            parts.append(getattr(res, "text", None) or f"[resource {getattr(res, 'uri', '')}]")
    return "\n".join(p for p in parts if p)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        inner = exc.exceptions[0] if exc.exceptions else exc
        return _reason(inner)
    text = str(exc).strip()
    if _is_disconnect(exc):
        return f"the connection closed ({type(exc).__name__}{': ' + text if text else ''})"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_disconnect(exc: BaseException) -> bool:
    if isinstance(exc, (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)):
        return True
    if isinstance(exc, (ConnectionError, EOFError)):
        return True
    code = getattr(getattr(exc, "error", None), "code", getattr(exc, "code", None))
    return code == -32000  # the mcp SDK's CONNECTION_CLOSED


def _contract(client: Any, feature: str) -> Any:
    feat = client.config.features.get(feature)
    if feat is None:
        known = ", ".join(sorted(client.config.features)) or "none"
        raise ConfigError(f"feature {feature!r} is not in the config (features: {known})")
    if feat.contract is None:
        return None
    from portal.contracts.feature import load_contract

    return load_contract(Path(client.config.base_dir) / feat.contract)


def _contract_allows(client: Any, feature: str, server: str, chosen: list[str]) -> list[str]:
    """A contract that declares tools is the allow-list: only those names may be offered."""
    contract = _contract(client, feature)
    if contract is None or not contract.tools:
        return chosen
    declared = {t.name for t in contract.tools}
    allowed = [n for n in chosen if n in declared]
    if not allowed:
        raise ContractError(
            f"feature {feature!r}: its contract allows tools {', '.join(sorted(declared))}; "
            f"MCP server {server!r} offers none of them ({', '.join(chosen) or 'no tools'})"
        )
    return allowed


def _check_targets(client: Any, feature: str, server: str, specs: list[ToolSpec]) -> None:
    """Every target of the feature must be able to take every tool's schema."""
    from portal.contracts.feature import FeatureContract
    from portal.providers.capability import check_target

    if not specs:
        return
    cfg = client.config
    feat = cfg.features[feature]
    targets = [feat.primary, *feat.fallbacks]
    if feat.canary is not None:
        targets.append(feat.canary.target)
    probe = FeatureContract(name=feature, version="mcp", tools=specs, source=f"MCP {server}")
    problems = []
    for target in targets:
        provider, _ = cfg.resolve_target(target)
        prov = cfg.providers.get(provider)
        kind = (prov.kind if prov is not None else None) or provider
        issues = check_target(
            probe,
            target,
            kind,
            options=prov.options if prov is not None else {},
            provider=cfg.provider_settings(provider),
        )
        for issue in issues:
            if issue.severity != "error":
                continue
            index = issue.pointer.split("/")[2] if issue.pointer.startswith("/tools/") else None
            tool = specs[int(index)].name if index is not None and index.isdigit() else "*"
            problems.append(f"tool {tool!r} -> {target}: {issue.message} (at {issue.pointer})")
    if problems:
        raise ContractError(
            f"MCP server {server!r}: feature {feature!r} cannot offer these tools:\n  "
            + "\n  ".join(problems)
            + "\nLeave them out with allow=[...], or route the feature to targets that take them"
        )
