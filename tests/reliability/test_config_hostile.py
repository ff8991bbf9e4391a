"""Hostile configs: every bad file or value ends in a `ConfigError` naming the key (never a
library traceback), and `portal config check` agrees with `Client()` both ways, because both
run `portal.config_check.check_config`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import portal
from portal.cli import main
from portal.config import load_config
from portal.errors import ConfigError
from portal.routing.state import RedisState, open_state

SIM = 'kind = "sim"\noptions = { seed = 1, time_scale = 0 }'


def _toml(tmp_path: Path, text: str, name: str = "portal.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["config", "check", "--config", str(path)])
    err = capsys.readouterr().err
    return code, [line.strip() for line in err.splitlines()[1:]]


def _client_errors(path: Path) -> list[str] | None:
    try:
        portal.Client(path, ledger=None).close()
    except ConfigError as exc:
        return [line.strip() for line in exc.errors]
    return None


# --------------------------------------------------------------- the check agrees with Client()

AGREE: dict[str, tuple[str, str]] = {
    "guard name typo": (
        f'[providers.a]\n{SIM}\n[features.f]\nprimary = "a:m"\nsafety = ["pi"]\n',
        'features."f".safety',
    ),
    "malformed ledger URL": (
        f'[portal]\nledger = "sqlite:/x.db"\n[providers.a]\n{SIM}\n',
        "portal.ledger",
    ),
    "postgres ledger with a bad port": (
        f'[portal]\nledger = "postgresql://u:pw@h:99999/db"\n[providers.a]\n{SIM}\n',
        "the port is not a number",
    ),
    "bad ramp_every": (
        f'[providers.a]\n{SIM}\n[features.f]\nprimary = "a:m"\n'
        '[features.f.canary]\ntarget = "a:n"\nramp_every = "soon"\n',
        'features."f".canary.ramp_every',
    ),
    "negative price": (
        f'[providers.a]\n{SIM}\n[providers.a.prices."m"]\ninput = -1\noutput = 1\n',
        'providers.a.prices."m".input',
    ),
    "bad state URL": ('[portal]\nstate = "redis://127.0.0.1:99999/0"\n', "portal.state"),
    "state refresh_ms zero": (
        '[portal]\nstate = "redis://127.0.0.1:6379/0?refresh_ms=0"\n',
        "refresh_ms='0'",
    ),
    "option typo": (
        '[providers.o]\nkind = "openai"\napi_key = "sk-test-aaaaaaaa"\n'
        "options = { max_reply_byte = 10 }\n",
        "providers.o.options.max_reply_byte: unknown option for kind 'openai'; did you mean "
        "'max_reply_bytes'?",
    ),
    "canary outside the data-path policy": (
        '[providers.eu]\nkind = "sim"\nregion = "eu"\n[providers.us]\nkind = "sim"\n'
        'region = "us"\n[features.f]\nprimary = "eu:m"\nallowed = { regions = ["eu"] }\n'
        '[features.f.canary]\ntarget = "us:m"\npercent = 50\n',
        "features.\"f\".canary.target: target us:m is in region 'us'",
    ),
}


@pytest.mark.parametrize("case", list(AGREE))
def test_config_check_and_client_agree(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, expected = AGREE[case]
    path = _toml(tmp_path, text)
    code, lines = _check(path, capsys)
    assert code == 1, f"{case}: config check passed"
    assert any(expected in line for line in lines), f"{case}: {lines}"
    from_client = _client_errors(path)
    assert from_client is not None, f"{case}: Client() accepted it"
    assert {line.removeprefix("portal.toml: ") for line in lines} == {
        line.removeprefix("portal.toml: ") for line in from_client
    }


def test_a_sound_config_passes_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _toml(tmp_path, f'[providers.a]\n{SIM}\n[features.f]\nprimary = "a:m"\n')
    assert _check(path, capsys)[0] == 0
    assert _client_errors(path) is None


def test_an_unknown_kind_is_reported_with_the_other_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _toml(tmp_path, '[providers.a]\nkind = "opnai"\ntimeout_s = -1\n')
    code, lines = _check(path, capsys)
    assert code == 1
    assert any("providers.a.timeout_s" in line for line in lines), lines
    assert any("unknown provider kind 'opnai'; did you mean 'openai'?" in ln for ln in lines)


# ------------------------------------------------------------ files and values that crashed


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("utf16", '[portal]\nstate = "memory"\n'.encode("utf-16"), "is not UTF-8 text"),
        ("binary", bytes(range(256)) * 4, "is not UTF-8 text"),
        ("latin1", "[portal]\nkey_salt = 'caf\xe9'\n".encode("latin-1"), "is not UTF-8 text"),
        ("deep-array", b"a = " + b"[" * 20_000 + b"]" * 20_000, "nested too deeply"),
        ("deep-table", b"a = " + b"{b = " * 5_000 + b"1" + b"}" * 5_000, "nested too deeply"),
    ],
)
def test_unreadable_files_are_config_errors(
    name: str, raw: bytes, expected: str, tmp_path: Path
) -> None:
    path = tmp_path / "portal.toml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_a_deeply_nested_dict_config_is_a_config_error() -> None:
    deep: dict[str, Any] = {}
    cur = deep
    for _ in range(5_000):
        cur["x"] = {}
        cur = cur["x"]
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config({"gamedays": {"g": deep}})


@pytest.mark.parametrize("tool", ["tool = 5", "[tool]\nportal = 5", "[tool]\nportal = [1]"])
def test_pyproject_with_a_tool_value_that_is_not_a_table(tool: str, tmp_path: Path) -> None:
    path = _toml(tmp_path, tool + "\n", "pyproject.toml")
    with pytest.raises(ConfigError, match=r"pyproject\.toml"):
        load_config(path)


def test_a_deeply_nested_contract_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text(
        '{"version": "1", "output": ' + '{"items": ' * 3_000 + "{}" + "}" * 3_000 + "}"
    )
    path = _toml(
        tmp_path,
        f'[providers.a]\n{SIM}\n[features.f]\nprimary = "a:m"\ncontract = "c.json"\n',
    )
    errors = _client_errors(path)
    assert errors is not None and any("nested more than 100 levels" in e for e in errors)


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        ('base_url = "http://h/v1\\r\\nX-Evil: 1"', "providers.o.base_url"),
        ('base_url = "http://h/v1 x"', "providers.o.base_url"),
        ('base_url = "http://hé/v1"', "providers.o.base_url"),
        ('headers = { "X-Tag" = "caf\\u00e9" }', "header 'X-Tag'"),
        ('headers = { "X-Tag" = "a\\r\\nb" }', "header 'X-Tag'"),
        ('headers = { "X-Tàg" = "a" }', "header name 'X-Tàg'"),
        ('headers = { "Content-Length" = "5" }', "header 'Content-Length' is computed"),
        ('api_key = "sk-\\u00e9aaaaaaaaaa"', "providers.o.api_key"),
    ],
)
def test_bad_headers_urls_and_keys_name_the_key(provider: str, expected: str) -> None:
    import tomllib

    data = tomllib.loads(f'[providers.o]\nkind = "openai"\n{provider}\n')
    with pytest.raises(ConfigError) as info:
        load_config(data)
    assert any(expected in line for line in info.value.errors), info.value.errors


# ----------------------------------------------------------------------- state thread


@pytest.mark.parametrize("refresh", ["0", "-5", "nan", "inf", "abc", "1"])
def test_refresh_ms_is_validated(refresh: str) -> None:
    url = f"redis://127.0.0.1:6379/0?refresh_ms={refresh}"
    with pytest.raises(ConfigError, match="refresh_ms"):
        load_config({"portal": {"state": url}})
    with pytest.raises(ConfigError, match="refresh_ms"):
        open_state(url)
    if refresh != "abc":
        with pytest.raises(ConfigError, match="refresh_ms"):
            RedisState("redis://127.0.0.1:6379/0", refresh_ms=float(refresh), start=False)


def test_queued_state_writes_are_bounded_while_redis_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = RedisState("redis://127.0.0.1:1/0", start=False, socket_timeout_s=0.05)
    state.max_pending = 1_000
    with caplog.at_level(logging.WARNING, logger="portal"):
        for i in range(5_000):
            state.incr("k", "calls", 1.0)
            if i % 1_000 == 0:
                assert state.sync() is False  # Redis is down: the batch goes back, bounded
        assert state.sync() is False
    assert len(state._pending) == 1_000
    assert state.dropped_writes == 4_000
    drops = [r for r in caplog.records if "dropping the oldest" in r.getMessage()]
    assert len(drops) == 1
    assert state.local.counters("k")["calls"] == 5_000  # this process still counts locally
    state._stop.set()
    state._redis.close()


# ------------------------------------------------------------------- data-path policy at run time


def test_a_model_pin_outside_the_policy_is_refused() -> None:
    cfg = {
        "portal": {"ledger": "none"},
        "providers": {
            "eu": {"kind": "sim", "region": "eu", "options": {"seed": 1, "time_scale": 0}},
            "us": {"kind": "sim", "region": "us", "options": {"seed": 1, "time_scale": 0}},
        },
        "features": {"f": {"primary": "eu:m", "allowed": {"regions": ["eu"]}}},
    }
    with portal.Client(cfg) as client:
        with pytest.raises(portal.PolicyViolation, match="model='us:m' is outside"):
            client.chat(feature="f", model="us:m", messages=[portal.user("hi")])
        with pytest.raises(portal.PolicyViolation, match="model='us:m' is outside"):
            list(client.stream(feature="f", model="us:m", messages=[portal.user("hi")]))
        resp = client.chat(feature="f", model="eu:other", messages=[portal.user("hi")])
        assert resp.target == "eu:other"
