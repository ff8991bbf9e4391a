"""`portal gameday` takes the load options its docs list (those of `portal loadtest`), on the
command line and in ``[gamedays.NAME]`` tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portal.cli.gameday import _parser, _scenarios
from portal.config import load_config
from portal.stress.arrivals import UsageError
from portal.stress.gameday import check_scenario, scenarios_from_config

CONFIG = {
    "providers": {"acme": {"kind": "sim"}, "cirrus": {"kind": "sim"}},
    "features": {"f": {"primary": "acme:sim-small", "fallbacks": ["cirrus:sim-small"]}},
}


def test_users_drain_and_prompts_file_on_the_command_line(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "where is my order?"}) + "\n", encoding="utf-8")
    args = _parser().parse_args(
        [
            *("--feature", "f", "--scenario", "outage", "--target", "acme"),
            *("--users", "37", "--drain", "5s", "--prompts-file", str(prompts)),
        ]
    )
    (sc,) = _scenarios(args, load_config(CONFIG))
    assert sc.users == 37 and sc.drain == 5.0
    spec = sc.load_spec()
    assert spec.users == 37 and spec.drain_s == 5.0
    assert spec.prompts.lengths is None and len(spec.prompts.records) == 1


def test_users_override_every_table_with_all() -> None:
    cfg = load_config(
        {**CONFIG, "gamedays": {"down": {"feature": "f", "scenario": "outage", "target": "acme"}}}
    )
    args = _parser().parse_args(["--all", "--users", "12"])
    (sc,) = _scenarios(args, cfg)
    assert sc.users == 12 and sc.name == "down"


def test_a_prompts_file_in_a_table_is_checked_before_the_run(tmp_path: Path) -> None:
    table = {"feature": "f", "scenario": "slow", "target": "acme"}
    cfg = load_config(
        {**CONFIG, "gamedays": {"real": {**table, "prompts": f"file:{tmp_path / 'none.jsonl'}"}}}
    )
    (sc,) = scenarios_from_config(cfg)
    with pytest.raises(UsageError, match="cannot read it"):
        check_scenario(sc, cfg)


def test_a_stable_prefix_workload_on_the_command_line_and_in_a_table() -> None:
    args = _parser().parse_args(
        [
            *("--feature", "f", "--scenario", "outage", "--target", "acme"),
            *("--stable-prefix-tokens", "1200", "--stable-prefixes", "3"),
        ]
    )
    (sc,) = _scenarios(args, load_config(CONFIG))
    prompts = sc.load_spec().prompts
    assert prompts.stable_prefix_tokens == 1200 and len(prompts.prefixes) == 3
    assert all(p["cache"] is True and p["role"] == "system" for p in prompts.prefixes)
    table = {"feature": "f", "scenario": "slow", "target": "acme", "stable_prefix_tokens": 500}
    (sc,) = scenarios_from_config(load_config({**CONFIG, "gamedays": {"cached": table}}))
    assert len(sc.load_spec().prompts.prefixes) == 1
