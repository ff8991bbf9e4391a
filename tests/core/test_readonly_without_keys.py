"""Commands that only read (report, route explain, canary status, contracts check, prices) run with no
API key exported; keys are needed only to send a call, which then fails naming the fix."""

from __future__ import annotations

import io
from pathlib import Path

import httpx2
import pytest

import portal
from portal.cli import main as portal_main
from portal.cli.routing import canary_main, route_main
from portal.config import load_config

CONFIG = """
[portal]
key_salt = "${PORTAL_KEY_SALT}"
ledger = "sqlite:///ledger.db"

[providers.openai]
api_key = "${OPENAI_API_KEY}"
[providers.anthropic]
api_key = "${ANTHROPIC_API_KEY}"
[providers.azure]
kind = "azure-openai"
base_url = "https://example-resource.openai.azure.com"
api_key = "${AZURE_OPENAI_API_KEY}"
headers = { X-Org = "org-${ORG_ID}" }

[features."support.answer"]
primary = "openai:gpt-4.1-mini"
fallbacks = ["anthropic:claude-haiku-4-5", "azure:gpt-4.1-mini"]
[features."support.answer".canary]
target = "anthropic:claude-sonnet-4-5"
percent = 5
"""

VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AZURE_OPENAI_API_KEY", "ORG_ID", "PORTAL_KEY_SALT")


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in VARS:
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "portal.toml"
    path.write_text(CONFIG, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return path


def test_loading_for_sending_still_needs_every_variable(config: Path) -> None:
    with pytest.raises(portal.ConfigError) as info:
        load_config(config)
    text = str(info.value)
    for var in VARS:
        assert var in text


def test_loading_for_reading_leaves_the_keys_unset(config: Path) -> None:
    cfg = load_config(config, keys_required=False)
    assert cfg.providers["openai"].api_key is None
    assert cfg.providers["azure"].headers == {"X-Org": "org-"}
    assert cfg.unset_keys == [
        "portal.key_salt (${PORTAL_KEY_SALT})",
        "providers.openai.api_key (${OPENAI_API_KEY})",
        "providers.anthropic.api_key (${ANTHROPIC_API_KEY})",
        "providers.azure.api_key (${AZURE_OPENAI_API_KEY})",
        "providers.azure.headers.X-Org (${ORG_ID})",
    ]


def test_a_missing_variable_outside_credentials_is_still_an_error(tmp_path: Path) -> None:
    path = tmp_path / "portal.toml"
    path.write_text(
        '[providers.local]\nkind = "openai-compatible"\nbase_url = "${LOCAL_URL}"\n',
        encoding="utf-8",
    )
    with pytest.raises(
        portal.ConfigError, match=r"providers\.local\.base_url: environment variable"
    ):
        load_config(path, keys_required=False, env={})


def test_report_runs_without_keys(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert portal_main(["report", "--since", "all", "--format", "json"]) == 0
    assert '"calls": 0' in capsys.readouterr().out


def test_route_explain_runs_without_keys(config: Path) -> None:
    out = io.StringIO()
    assert route_main(["explain", "support.answer", "--key", "user-1"], out=out) == 0
    assert "1. openai:gpt-4.1-mini [primary]" in out.getvalue()


def test_canary_status_runs_without_keys(config: Path) -> None:
    out = io.StringIO()
    assert canary_main(["status", "support.answer"], out=out) == 0
    assert "support.answer: canary anthropic:claude-sonnet-4-5 at 5%" in out.getvalue()


def test_contracts_check_runs_without_keys(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert portal_main(["contracts", "check", "--config", str(config)]) == 0
    assert "OK: 0 error(s)" in capsys.readouterr().out


def test_sending_without_the_key_fails_naming_it(config: Path) -> None:
    sent: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return httpx2.Response(500)

    cfg = load_config(config, keys_required=False)
    cfg.features["support.answer"].fallbacks = []
    cfg.features["support.answer"].canary = None
    with (
        portal.Client(cfg, ledger=None, transports={"openai": httpx2.MockTransport(handler)}) as c,
        pytest.raises(portal.AuthenticationError, match="no API key configured for provider"),
    ):
        c.chat(feature="support.answer", messages=[portal.user("hi")])
    assert sent == []  # refused before anything went out


def test_prices_show_runs_without_keys(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert portal_main(["prices", "show", "openai:gpt-4.1-mini", "--config", str(config)]) == 0
    assert "gpt-4.1-mini" in capsys.readouterr().out
