"""MCP servers as tool sources for portal's tool loop (extra ``portal-sdk[mcp]``).

    async with portal.mcp.stdio(["python", "files_server.py"], name="files") as files:
        resp = await client.chat(feature="support.answer", messages=[...],
                                 tools=files.tools(client=client, feature="support.answer"))

`stdio` starts the server as a subprocess and talks over its stdin/stdout; `http` connects
to a streamable-HTTP endpoint. Either gives an `MCPTools`: its `tools()` are `ToolSpec`
objects whose functions call the server, so every vendor can use them, the feature's
contract decides which are offered, and the tool loop's rules (argument validation, errors
and timeouts back to the model, parallel calls) apply.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from portal.errors import ConfigError
from portal.mcp._source import MCPServerError, MCPToolError, MCPTools

__all__ = ["MCPServerError", "MCPToolError", "MCPTools", "http", "stdio"]

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_CONNECT_TIMEOUT_S = 30.0


def stdio(
    command: str | Sequence[str],
    *,
    name: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> MCPTools:
    """An MCP server started as a subprocess (``command`` as a list, or a shell-style string).

    ``timeout_s`` bounds each tool call, ``connect_timeout_s`` the start and the tool listing.
    The server's stderr is kept, and its last lines are quoted when it fails or dies. ``env``
    is added to a minimal default environment (the mcp SDK's), never to all of ours."""
    argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    if not argv:
        raise ConfigError("portal.mcp.stdio: command is empty; e.g. ['python', 'server.py']")
    label = name or os.path.basename(argv[-1] if len(argv) > 1 else argv[0])
    where = "stdio: " + " ".join(shlex.quote(a) for a in argv)[:200]

    def connect(errlog: Any) -> Any:
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        params = StdioServerParameters(
            command=argv[0],
            args=argv[1:],
            env=dict(env) if env is not None else None,
            cwd=os.fspath(cwd) if cwd is not None else None,
        )
        return stdio_client(params, errlog=errlog if errlog is not None else sys.stderr)

    return MCPTools(
        label,
        where,
        connect,
        timeout_s=timeout_s,
        connect_timeout_s=connect_timeout_s,
        errlog=True,
    )


def http(
    url: str,
    *,
    name: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> MCPTools:
    """An MCP server at a streamable-HTTP endpoint (``http://host:port/mcp``). ``headers``
    (e.g. ``Authorization``) go with every request and never into a message or repr."""
    import httpx2

    try:
        parsed = httpx2.URL(url)
    except Exception as exc:
        raise ConfigError(f"portal.mcp.http: {url!r} is not a URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(
            "portal.mcp.http: expected an http(s) URL such as http://127.0.0.1:8000/mcp"
        )
    shown = str(parsed.copy_with(username=None, password=None, query=None))
    label = name or parsed.host

    def connect(_errlog: Any) -> Any:
        from mcp.client.streamable_http import streamable_http_client

        client = httpx2.AsyncClient(
            headers=dict(headers or {}),
            timeout=httpx2.Timeout(connect_timeout_s, read=timeout_s),
            follow_redirects=False,
        )
        return _owning(streamable_http_client(url, http_client=client), client)

    return MCPTools(
        label, "http: " + shown, connect, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s
    )


class _owning:
    """The transport's context, closing the httpx2 client we made for it on the way out."""

    def __init__(self, inner: Any, client: Any) -> None:
        self._inner = inner
        self._client = client

    async def __aenter__(self) -> Any:
        try:
            return await self._inner.__aenter__()
        except BaseException:
            await self._client.aclose()
            raise

    async def __aexit__(self, *exc: Any) -> Any:
        try:
            return await self._inner.__aexit__(*exc)
        finally:
            await self._client.aclose()
