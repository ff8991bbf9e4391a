"""The contract-pair corpus: every compatibility rule, with the verdict callers rely on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from portal.contracts.compat import compare
from portal.contracts.feature import FeatureContract, parse_contract

CORPUS = json.loads((Path(__file__).parent / "corpus" / "cases.json").read_text())["cases"]


def _contract(case: dict[str, Any], side: str) -> FeatureContract:
    doc: dict[str, Any] = {"name": "f", "version": case[f"{side}_version"]}
    value = case[side]
    area = case["area"]
    if value is not None:
        if area in ("input", "output"):
            doc[area] = value
        elif area == "tools":
            doc["tools"] = value
        elif area == "prompt":
            doc["prompt"] = value
        elif area == "description":
            doc["description"] = value
    return parse_contract(json.dumps(doc), f"{case['id']}-{side}.json")


def test_corpus_is_big_enough_and_covers_every_area() -> None:
    assert len(CORPUS) >= 40
    assert {c["area"] for c in CORPUS} >= {"input", "output", "tools", "prompt"}
    assert {c["verdict"] for c in CORPUS} == {"unchanged", "compatible", "intended", "breaking"}


@pytest.mark.parametrize("case", CORPUS, ids=[c["id"] for c in CORPUS])
def test_case(case: dict[str, Any]) -> None:
    result = compare(_contract(case, "old"), _contract(case, "new"))
    assert result.verdict == case["verdict"], [c.message for c in result.changes]
    assert sorted({c.rule for c in result.breaking}) == sorted(case["breaking_rules"])
