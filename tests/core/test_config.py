"""Config errors name the file, the table and the key, and say what is expected."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import portal
from portal.config import load_config, parse_model_id


def write(tmp_path: Path, text: str, name: str = "portal.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(portal.ConfigError) as info:
        load_config(path)
    return info.value.errors


def test_canary_percent_out_of_range(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [providers.a]
        kind = "sim"
        [features."support.answer"]
        primary = "a:m"
        [features."support.answer".canary]
        target = "a:n"
        percent = 120
    """,
    )
    assert errors_of(path) == [
        'portal.toml: features."support.answer".canary.percent: must be between 0 and 100, got 120'
    ]


def test_every_problem_is_listed_with_did_you_mean(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [providers.a]
        kind = "sim"
        bse_url = "http://x"
        [features.f]
        primary = "a:m"
        retries = 3
        timeout_s = -1
    """,
    )
    assert errors_of(path) == [
        "portal.toml: providers.a.bse_url: unknown key; did you mean 'base_url'? Allowed keys: "
        "api_key, base_url, breaker, connect_timeout_s, first_byte_timeout_s, headers, kind, "
        "options, prices, region, sla, stall_timeout_s, tags, throughput, timeout_s, verify_tls",
        "portal.toml: features.f.timeout_s: must be > 0, got -1",
        "portal.toml: features.f.retries: unknown key; did you mean 'retry'? Allowed keys: "
        "allowed, budget, cache, cache_affinity, canary, contract, eject, fallbacks, "
        "first_token_timeout_s, hedge, max_tokens, min_samples, primary, rag, retry, safety, "
        "sla, strategy, tags, temperature, timeout_s, weights",
    ]


def test_unknown_provider_in_a_model_id(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [providers.openai]
        api_key = "sk-abc"
        [features.f]
        primary = "opena:gpt-4.1"
        fallbacks = ["nope"]
    """,
    )
    errs = errors_of(path)
    assert errs[0].startswith(
        "portal.toml: features.f.primary: unknown provider 'opena' in 'opena:gpt-4.1'; "
        "did you mean 'openai'?"
    )
    assert errs[1] == (
        "portal.toml: features.f.fallbacks[0]: model id 'nope' must be 'provider:model', "
        "e.g. 'openai:gpt-4.1-mini'"
    )


def test_unknown_provider_kind(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [providers.x]
        kind = "antropic"
    """,
    )
    (err,) = errors_of(path)
    assert err.startswith(
        "portal.toml: providers.x.kind: unknown provider kind 'antropic'; did you mean 'anthropic'?"
    )


def test_missing_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTAL_TEST_KEY", raising=False)
    path = write(
        tmp_path,
        """
        [providers.openai]
        api_key = "${PORTAL_TEST_KEY}"
    """,
    )
    assert errors_of(path) == [
        "portal.toml: providers.openai.api_key: environment variable PORTAL_TEST_KEY is not set; "
        "export it, or write ${PORTAL_TEST_KEY:-default}"
    ]


def test_env_interpolation_and_secret_never_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORTAL_TEST_KEY", "sk-live-very-secret")
    path = write(
        tmp_path,
        """
        [providers.openai]
        api_key = "${PORTAL_TEST_KEY}"
        base_url = "${PORTAL_TEST_URL:-http://127.0.0.1:9/v1}"
    """,
    )
    cfg = load_config(path)
    prov = cfg.providers["openai"]
    assert prov.api_key is not None and prov.api_key.get() == "sk-live-very-secret"
    assert prov.base_url == "http://127.0.0.1:9/v1"
    assert "sk-live" not in repr(cfg) + str(cfg) + repr(cfg.provider_settings("openai"))
    assert "sk-live" not in cfg.model_dump_json()


def test_bad_toml_names_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [providers.a]
        kind = "sim
    """,
    )
    (err,) = errors_of(path)
    assert err.startswith("portal.toml: invalid TOML: ")
    assert "line 3" in err


def test_base_url_must_be_http(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [providers.a]
        kind = "openai"
        base_url = "ftp://example.com"
    """,
    )
    assert errors_of(path) == [
        "portal.toml: providers.a.base_url: must start with http:// or https://, got 'ftp://example.com'"
    ]


def test_wrong_types_are_explained(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [providers.a]
        kind = "sim"
        [features.f]
        primary = "a:m"
        fallbacks = "a:n"
        strategy = "random"
    """,
    )
    assert errors_of(path) == [
        "portal.toml: features.f.fallbacks: expected an array, got 'a:n'",
        "portal.toml: features.f.strategy: must be one of 'ordered', 'cheapest', 'fastest', "
        "'lowest-latency', 'cheapest-within-sla' or 'weighted', "
        "got 'random'",
    ]


def test_pyproject_tool_portal(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [project]
        name = "app"
        [tool.portal.providers.a]
        kind = "sim"
        [tool.portal.features.f]
        primary = "a:m"
        fallbacks = ["b:m"]
    """,
        name="pyproject.toml",
    )
    (err,) = errors_of(path)
    assert err.startswith(
        "pyproject.toml: tool.portal.features.f.fallbacks[0]: unknown provider 'b'"
    )
    path.write_text(path.read_text().replace('fallbacks = ["b:m"]', ""))
    cfg = load_config(path)
    assert cfg.features["f"].primary == "a:m"


def test_missing_file() -> None:
    with pytest.raises(portal.ConfigError) as info:
        load_config("/nonexistent/portal.toml")
    assert str(info.value) == "/nonexistent/portal.toml: no such config file"


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("openai:gpt-4.1-mini", ("openai", "gpt-4.1-mini")),
        ("ollama:llama3:8b", ("ollama", "llama3:8b")),
        ("bedrock:anthropic.claude-3:0", ("bedrock", "anthropic.claude-3:0")),
    ],
)
def test_model_ids_split_on_the_first_colon(model_id: str, expected: tuple[str, str]) -> None:
    assert parse_model_id(model_id) == expected


@pytest.mark.parametrize("bad", ["gpt-4", ":gpt", "openai:", ""])
def test_bad_model_ids(bad: str) -> None:
    with pytest.raises(portal.ConfigError, match="must be 'provider:model'"):
        parse_model_id(bad)


def test_sim_options_are_checked_when_the_client_starts() -> None:
    with pytest.raises(portal.ConfigError) as info:
        portal.Client(
            {
                "providers": {"a": {"kind": "sim", "options": {"latency_p50_ms": -5, "colour": 1}}},
                "features": {"f": {"primary": "a:m"}},
            },
            ledger=None,
        )
    assert info.value.errors == [
        "providers.a.options.latency_p50_ms: Input should be greater than or equal to 0",
        "providers.a.options.colour: Extra inputs are not permitted",
    ]
