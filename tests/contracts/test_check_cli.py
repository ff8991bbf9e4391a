"""`portal contracts check` / `diff` as CI runs them: exit codes, formats, git refs."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from portal.cli.contracts import main

ROOT = Path(__file__).parents[2]
EXAMPLE_DIR = ROOT / "examples" / "contracts"

CONFIG = """
[providers.openai]
api_key = "${{OPENAI_KEY_THAT_CI_DOES_NOT_HAVE}}"
region = "us"
tags = ["soc2"]
[providers.gemini]
region = "{gemini_region}"
[features."support.answer"]
contract = "contracts/answer.toml"
primary = "openai:gpt-4.1-mini"
fallbacks = ["gemini:gemini-2.5-flash"]
{allowed}
"""

CONTRACT = """
version = "{version}"
[input]
type = "object"
required = ["question"]
[input.properties.question]
type = "string"
[output]
type = "object"
required = ["answer", "order_id"]
additionalProperties = false
[output.properties.answer]
type = "string"
[output.properties.order_id]
type = "string"
[[examples]]
input = {{ question = "Where is my order?" }}
output = {{ answer = "On its way.", order_id = "1" }}
"""


def write(tmp: Path, contract: str, allowed: str = "", gemini_region: str = "eu") -> Path:
    (tmp / "contracts").mkdir(exist_ok=True)
    (tmp / "contracts" / "answer.toml").write_text(contract)
    cfg = tmp / "portal.toml"
    cfg.write_text(CONFIG.format(allowed=allowed, gemini_region=gemini_region))
    return cfg


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_example_config_passes_without_any_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    code, out, _ = run("check", "--config", str(EXAMPLE_DIR / "portal.toml"))
    assert code == 0, out
    assert "OK: 0 error(s)" in out


def test_clean_contract_exit_0_and_json_shape(tmp_path: Path) -> None:
    cfg = write(tmp_path, CONTRACT.format(version="1.0.0"))
    code, out, _ = run("check", "--config", str(cfg), "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert set(data) == {
        "schema_version",
        "command",
        "ok",
        "exit_code",
        "summary",
        "features",
        "findings",
    }
    assert (data["schema_version"], data["command"], data["ok"], data["exit_code"]) == (
        1,
        "check",
        True,
        0,
    )
    assert data["summary"]["errors"] == 0 and data["summary"]["contracts"] == 1
    assert data["features"][0]["targets"] == ["openai:gpt-4.1-mini", "gemini:gemini-2.5-flash"]
    assert data["features"][0]["version"] == "1.0.0"
    for finding in data["findings"]:
        assert set(finding) == {
            "severity",
            "code",
            "message",
            "feature",
            "file",
            "line",
            "pointer",
            "target",
            "keyword",
        }


def test_contract_gemini_cannot_express_fails_with_file_line_and_pointer(tmp_path: Path) -> None:
    recursive = (
        CONTRACT.format(version="1.0.0")
        + """
[output.properties.thread]
"$ref" = "#/$defs/Msg"
[output."$defs".Msg]
type = "object"
[output."$defs".Msg.properties.replies]
type = "array"
items = { "$ref" = "#/$defs/Msg" }
"""
    )
    cfg = write(tmp_path, recursive)
    code, out, _ = run("check", "--config", str(cfg), "--format", "json")
    assert code == 1
    errors = [f for f in json.loads(out)["findings"] if f["severity"] == "error"]
    assert [(e["code"], e["target"], e["keyword"]) for e in errors] == [
        ("capability.unsupported", "gemini:gemini-2.5-flash", "$ref")
    ]
    # reported at the definition, where it can be fixed
    assert errors[0]["pointer"] == "/output/$defs/Msg/properties/replies/items/$ref"
    assert errors[0]["file"].endswith("contracts/answer.toml")
    assert errors[0]["line"] == 26  # items = { "$ref" = "#/$defs/Msg" }


def test_bad_example_reports_instance_path_and_keyword(tmp_path: Path) -> None:
    bad = CONTRACT.format(version="1.0.0").replace('order_id = "1"', "order_id = 1")
    cfg = write(tmp_path, bad)
    code, out, _ = run("check", "--config", str(cfg))
    assert code == 1
    assert "examples[0].output at /order_id: 1 is not of type 'string' (keyword 'type')" in out


def test_invalid_contract_file_is_an_error_at_its_key(tmp_path: Path) -> None:
    cfg = write(tmp_path, CONTRACT.format(version="1.0.0").replace("[input]", "[inptu]"))
    code, out, _ = run("check", "--config", str(cfg), "--format", "github")
    assert code == 1
    assert "::error file=contracts/answer.toml" not in out  # paths are relative to the cwd
    line = next(x for x in out.splitlines() if x.startswith("::error "))
    assert "answer.toml,line=" in line
    assert "inptu: unknown key; did you mean 'input'?" in line


def test_data_path_policy(tmp_path: Path) -> None:
    allowed = 'allowed = { regions = ["us"], tags = ["soc2"] }'
    cfg = write(tmp_path, CONTRACT.format(version="1.0.0"), allowed=allowed)
    code, out, _ = run("check", "--config", str(cfg), "--format", "json")
    assert code == 1
    found = [
        (f["code"], f["target"]) for f in json.loads(out)["findings"] if f["severity"] == "error"
    ]
    assert found == [
        ("policy.region", "gemini:gemini-2.5-flash"),
        ("policy.tags", "gemini:gemini-2.5-flash"),
    ]


def test_usage_and_config_errors_exit_2(tmp_path: Path) -> None:
    assert run("check", "--config", str(tmp_path / "missing.toml"))[0] == 2
    assert run("frobnicate")[0] == 2
    bad = tmp_path / "bad.toml"
    bad.write_text('[features.f]\nprimary = "nosuch:model"\n')
    code, _, err = run("check", "--config", str(bad))
    assert code == 2 and "nosuch" in err
    cfg = write(tmp_path, CONTRACT.format(version="1.0.0"))
    code, _, err = run("check", "--config", str(cfg), "--against", "HEAD")
    assert code == 2 and "not inside a git repository" in err


def test_github_format_escapes_newlines() -> None:
    from portal.cli.contracts import _format_github
    from portal.contracts.findings import CheckReport, Finding

    report = CheckReport([Finding("error", "x", "a\nb: 100%", "f", "c.toml", 3)])
    out = io.StringIO()
    _format_github(report, out)
    assert out.getvalue().splitlines()[0] == (
        "::error file=c.toml,line=3,title=portal contracts%3A f::a%0Ab: 100%25"
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_against_a_git_ref_in_a_repository_with_two_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, env=env, check=True, capture_output=True)

    cfg = write(tmp_path, CONTRACT.format(version="1.0.0"))
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "v1")
    # remove an output property callers read, without a major bump
    changed = CONTRACT.format(version="1.1.0").replace(
        'required = ["answer", "order_id"]', 'required = ["answer"]'
    )
    changed = changed.replace('[output.properties.order_id]\ntype = "string"\n', "")
    changed = changed.replace(', order_id = "1"', "")
    (tmp_path / "contracts" / "answer.toml").write_text(changed)
    git("commit", "-q", "-am", "drop order_id")
    monkeypatch.chdir(tmp_path)

    code, out, _ = run(
        "check", "--config", "portal.toml", "--against", "HEAD~1", "--format", "json"
    )
    data = json.loads(out)
    assert code == 1
    assert data["features"][0]["verdict"] == "breaking"
    breaking = [f for f in data["findings"] if f["code"] == "compat.breaking"]
    assert [(b["keyword"], b["pointer"], b["file"]) for b in breaking] == [
        ("property-removed", "/output/properties/order_id", "contracts/answer.toml")
    ]

    code, out, _ = run(
        "check", "--config", "portal.toml", "--against", "HEAD~1", "--format", "github"
    )
    assert "::error file=contracts/answer.toml" in out
    assert "breaking change without a major version bump (1.0.0 -> 1.1.0)" in out

    # the same change with a major bump is intended: exit 0, reported as info
    (tmp_path / "contracts" / "answer.toml").write_text(changed.replace("1.1.0", "2.0.0"))
    code, out, _ = run("check", "--config", str(cfg), "--against", "HEAD~1", "--format", "json")
    data = json.loads(out)
    assert code == 0
    assert data["features"][0]["verdict"] == "intended"
    assert [f["code"] for f in data["findings"] if f["code"].startswith("compat.")] == [
        "compat.intended"
    ]
    # a ref that does not exist is a usage error
    assert run("check", "--config", str(cfg), "--against", "no-such-ref")[0] == 2


def test_diff_command(tmp_path: Path) -> None:
    old = tmp_path / "old.toml"
    new = tmp_path / "new.toml"
    old.write_text(CONTRACT.format(version="1.0.0"))
    new.write_text(
        CONTRACT.format(version="1.1.0").replace(
            '[input.properties.question]\ntype = "string"',
            '[input.properties.question]\ntype = "string"\n'
            '[input.properties.lang]\ntype = "string"',
        )
    )
    code, out, _ = run("diff", str(old), str(new))
    assert code == 0
    assert "compatible: no breaking changes" in out
    assert "optional property 'lang' added" in out
    new.write_text(
        CONTRACT.format(version="1.1.0").replace(
            'required = ["question"]', 'required = ["question", "lang"]'
        )
    )
    code, out, _ = run("diff", str(old), str(new))
    assert code == 1
    assert "BREAKING changes without a major version bump" in out
    assert "fix: bump version to 2.0.0" in out
    code, out, _ = run("diff", str(old), str(new), "--format", "json")
    data: dict[str, Any] = json.loads(out)
    assert data["command"] == "diff" and data["features"][0]["verdict"] == "breaking"
    assert run("diff", str(old), str(tmp_path / "missing.toml"))[0] == 2


def test_documented_json_output_matches_the_real_one(tmp_path: Path) -> None:
    import re

    docs = (ROOT / "docs" / "contracts.md").read_text()
    block = re.search(r"### `--format json`.*?```json\n(.*?)```", docs, re.S)
    assert block is not None
    documented = json.loads(block.group(1))
    cfg = write(tmp_path, CONTRACT.format(version="1.0.0"))
    real = json.loads(run("check", "--config", str(cfg), "--format", "json")[1])
    assert set(documented) == set(real)
    assert set(documented["summary"]) == set(real["summary"])
    assert set(documented["features"][0]) == set(real["features"][0])
    assert set(documented["findings"][0]) == set(real["findings"][0])


def test_config_in_pyproject_tool_portal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, CONTRACT.format(version="1.0.0"))
    text = (tmp_path / "portal.toml").read_text()
    text = re.sub(r"^\[", "[tool.portal.", text, flags=re.M)
    (tmp_path / "portal.toml").unlink()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "app"\n' + text)
    monkeypatch.chdir(tmp_path)
    code, out, err = run("check")
    assert code == 0, err
    assert "support.answer: contracts/answer.toml v1.0.0" in out


def test_strict_tool_with_an_any_object_parameter_fails_the_check(tmp_path: Path) -> None:
    with_tool = (
        CONTRACT.format(version="1.0.0")
        + """
[[tools]]
name = "search_orders"
description = "Search orders."
strict = true
[tools.parameters]
type = "object"
required = ["query"]
[tools.parameters.properties.query]
type = "string"
[tools.parameters.properties.filters]
type = "object"
"""
    )
    cfg = write(tmp_path, with_tool)
    code, out, _ = run("check", "--config", str(cfg), "--format", "json")
    assert code == 1
    errors = [f for f in json.loads(out)["findings"] if f["severity"] == "error"]
    assert sorted((e["target"], e["keyword"], e["pointer"]) for e in errors) == [
        # Gemini has no strict flag: refused, not sent as if it were strict
        ("gemini:gemini-2.5-flash", "strict", "/tools/0/strict"),
        ("openai:gpt-4.1-mini", "type", "/tools/0/parameters/properties/filters"),
    ]
    openai = next(e for e in errors if e["target"] == "openai:gpt-4.1-mini")
    assert "only send {}" in openai["message"]
