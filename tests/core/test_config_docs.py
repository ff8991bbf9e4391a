"""docs/config.md is generated from the config models: every field documented, the file
current, and every example in it accepted by the loader."""

from __future__ import annotations

import logging
import re
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from portal import config_docs
from portal.config import load_config
from portal.providers.simulated import SimOptions
from portal.stress.gameday import check_scenario, scenarios_from_config

ROOT = Path(__file__).resolve().parents[2]
FIX = "add description= and examples= to the field, then run: python -m portal.config_docs"


def test_every_config_field_has_a_description_and_an_example() -> None:
    missing = config_docs.missing_docs()
    assert not missing, FIX + "\n" + "\n".join(missing)


def test_docs_config_md_is_generated_and_current() -> None:
    current = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert current == config_docs.render(), "docs/config.md is stale; " + FIX


def test_every_table_and_key_is_in_the_reference() -> None:
    text = config_docs.render()
    for table in config_docs.tables():
        assert f"## {table.path}\n" in text
        for name, info in table.model.model_fields.items():
            if info.exclude or name in table.hidden:
                continue
            assert f"| `{info.alias or name}` |" in text, f"{table.path}.{name}"
    assert "## portal\n" in text and "## features.NAME.canary.guard\n" in text
    assert "| `ledger` |" in text and "| `api_key` |" in text


def test_the_examples_of_the_reference_load() -> None:
    blocks = re.findall(r"```toml\n(.*?)```", config_docs.render(), flags=re.S)
    assert len(blocks) >= len(config_docs.tables())
    data = tomllib.loads("".join(blocks))
    cfg = load_config(data, env={"TOGETHER_API_KEY": "sk-example", "PORTAL_KEY_SALT": "s"})
    assert cfg.features["support.answer"].canary is not None
    assert cfg.portal.log_level == "warning"
    SimOptions.model_validate(cfg.providers["acme"].options)
    (scenario,) = scenarios_from_config(cfg)
    assert check_scenario(scenario, cfg) == "together"
    assert scenario.fault.status == 503 and scenario.users == 500


def test_a_field_without_description_or_example_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Knob(BaseModel):
        """A table."""

        documented: int = Field(1, description="Fine.", examples=[2])
        bare: int = 1
        no_example: int = Field(1, description="Says what.")

    monkeypatch.setattr(config_docs, "tables", lambda: [config_docs.Table("knob", Knob)])
    assert config_docs.missing_docs() == [
        "knob.bare (Knob.bare): no description=",
        "knob.bare (Knob.bare): no examples=",
        "knob.no_example (Knob.no_example): no examples=",
    ]
    assert config_docs.main(["--check", "--out", str(ROOT / "docs" / "config.md")]) == 1


def test_check_mode_spots_a_stale_file(tmp_path: Path) -> None:
    out = tmp_path / "config.md"
    out.write_text(config_docs.render() + "edited by hand\n", encoding="utf-8")
    assert config_docs.main(["--check", "--out", str(out)]) == 1
    assert config_docs.main(["--out", str(out)]) == 0
    assert config_docs.main(["--check", "--out", str(out)]) == 0


def test_log_level_sets_the_portal_logger() -> None:
    import portal

    logger = logging.getLogger("portal")
    before = logger.level
    try:
        cfg = {
            "portal": {"log_level": "ERROR", "ledger": "none"},
            "providers": {"acme": {"kind": "sim"}},
            "features": {"f": {"primary": "acme:m"}},
        }
        with portal.Client(cfg):
            assert logger.level == logging.ERROR
    finally:
        logger.setLevel(before)
    with pytest.raises(portal.ConfigError, match="log_level"):
        load_config({"portal": {"log_level": "loud"}})
