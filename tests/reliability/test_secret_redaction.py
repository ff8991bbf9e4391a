"""Keys never leak, whoever builds the error: the base class of every provider error redacts
every registered credential; keys are validated when the config loads; `portal config check`
never prints an interpolated secret. (test_hostile_replies.py runs the same through both
clients for every wire API.)"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import httpx2
import pytest

import portal
from portal.config import load_config
from portal.errors import ConfigError, ProviderError
from portal.providers.adapter import Adapter
from portal.providers.openai import OpenAIAdapter
from portal.providers.settings import ProviderSettings
from portal.secret import Secret, scrub
from portal.wire import WireReply
from tests.reliability.test_security import texts_of

KEY = "sk-redact-me-0123456789abcdef"


def _shown(exc: BaseException) -> str:
    return "\n".join([*texts_of(exc), *traceback.format_exception(exc)])


def test_an_error_built_anywhere_is_redacted_once_the_key_is_known() -> None:
    Secret(KEY)  # what loading a config does with every api_key
    err = ProviderError(
        f"Incorrect API key provided: {KEY}",
        provider="p",
        status=401,
        headers={"X-Request-Id": KEY, "x-echo": f"Bearer {KEY}"},
        request_id=KEY,
        body={"error": {"message": KEY, "deep": [[{"k": KEY}]]}},
        code=KEY,
    )
    assert KEY not in _shown(err)
    assert err.request_id == "<redacted>"
    assert err.body == {"error": {"message": "<redacted>", "deep": [[{"k": "<redacted>"}]]}}


class ThirdParty(Adapter):
    """A third-party adapter that inherits `parse_error` and echoes everything it is sent."""

    kind: ClassVar[str] = "third-party-echo"

    def error_details(self, reply: WireReply) -> tuple[str, str | None]:
        return reply.body.decode(), reply.headers.get("x-code")


def test_a_third_party_adapter_inheriting_parse_error_is_redacted() -> None:
    adapter = ThirdParty(ProviderSettings("tp", "third-party-echo", api_key=Secret(KEY)))
    reply = WireReply(403, {"request-id": KEY, "x-code": KEY}, f"denied for {KEY}".encode())
    err = adapter.parse_error(reply, "m")
    assert isinstance(err, portal.AuthenticationError)
    assert KEY not in _shown(err)


def test_credentials_in_options_and_headers_are_redacted_too() -> None:
    token, secret = "session-token-abcdef123456", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYKEY"
    ProviderSettings(
        "x",
        "openai",
        options={"secret_access_key": secret, "region": "eu-west-1"},
        headers={"Authorization": f"Bearer {token}"},
    )
    encoded = quote(secret, safe="")
    err = ProviderError(f"bad {secret} / {token} / {encoded}", provider="x")
    assert secret not in str(err) and token not in str(err) and encoded not in str(err)
    assert "eu-west-1" not in known_forms()


def known_forms() -> tuple[str, ...]:
    from portal.secret import known_secrets

    return known_secrets()


def test_a_request_id_header_echoing_the_key_is_redacted_on_a_success() -> None:
    key = "sk-request-id-echo-77777777"
    client = portal.Client(
        {
            "portal": {"ledger": "none"},
            "providers": {"p": {"kind": "openai", "api_key": key}},
            "features": {"f": {"primary": "p:gpt-4o-mini"}},
        },
        transports={
            "p": httpx2.MockTransport(
                lambda request: httpx2.Response(
                    200,
                    headers={"x-request-id": key},
                    json={
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "model": "gpt-4o-mini",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "ok"},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    },
                )
            )
        },
    )
    with client:
        resp = client.chat(feature="f", messages=[portal.user("hi")])
    assert resp.text == "ok"
    assert key not in repr(resp.request_id) and key not in repr(resp.attempts)


def test_a_foreign_cause_is_scrubbed() -> None:
    Secret(KEY)
    cause = httpx2.LocalProtocolError(f"Illegal header value b'Bearer {KEY}\\n'")
    assert KEY not in str(scrub(cause))


@pytest.mark.parametrize(
    "value",
    [f"{KEY}\n", f" {KEY}", f"{KEY}\r", f"sk-a\tb{KEY}", f"{KEY}\x00", f"{KEY}é"],
    ids=["newline", "space", "cr", "tab", "nul", "non-ascii"],
)
def test_a_key_with_whitespace_or_control_characters_is_refused_at_load(
    value: str, tmp_path: Path
) -> None:
    cfg = {"providers": {"openai": {"api_key": "${THE_KEY}"}}}
    with pytest.raises(ConfigError) as info:
        load_config(cfg, env={"THE_KEY": value})
    text = "\n".join([str(info.value), *info.value.errors])
    assert "providers.openai.api_key" in text
    assert KEY not in text


def test_config_check_never_prints_a_swapped_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from portal.cli import main

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")
    path = tmp_path / "portal.toml"
    path.write_text(
        '[providers.openai]\nbase_url = "${OPENAI_API_KEY}"\napi_key = "${OPENAI_BASE_URL}"\n'
        '[portal]\nstate = "${OPENAI_API_KEY}"\nledger = "${OPENAI_API_KEY}"\n',
        encoding="utf-8",
    )
    assert main(["config", "check", "--config", str(path)]) == 1
    out = capsys.readouterr()
    assert KEY not in out.out + out.err
    assert "${OPENAI_API_KEY}" in out.err
    assert "providers.openai.base_url" in out.err


def test_secret_repr_hides_the_value() -> None:
    s: Any = Secret(KEY)
    assert KEY not in repr(s) and KEY not in str(s) and s.get() == KEY


def test_openai_adapter_error_is_still_classified() -> None:
    adapter = OpenAIAdapter(ProviderSettings("o", "openai", api_key=Secret(KEY)))
    body = b'{"error": {"message": "Incorrect API key provided: ' + KEY.encode() + b'"}}'
    err = adapter.parse_error(WireReply(401, {"x-request-id": KEY}, body), "gpt-4o")
    assert isinstance(err, portal.AuthenticationError)
    assert "Incorrect API key provided: <redacted>" in str(err)


def test_a_key_from_the_vendor_variable_with_a_newline_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", f"{KEY}\n")
    with pytest.raises(ConfigError) as info:
        portal.Client({"portal": {"ledger": "none"}, "features": {"f": {"primary": "openai:m"}}})
    assert "OPENAI_API_KEY" in str(info.value)
    assert KEY not in str(info.value)
