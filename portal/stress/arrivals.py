"""What a load test sends and when: open-loop arrival times, bursts, prompt and output lengths.

Arrival times are drawn up front from a seeded RNG (a Poisson process whose rate follows the
burst schedule), so the generator never waits for a reply before deciding when the next
request is due: that is what keeps a slow target from hiding its latency (coordinated
omission). Prompt lengths come from a long-tail distribution or from a JSONL file of real
prompts; output lengths (``max_tokens``) likewise.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Burst",
    "LengthDist",
    "PromptSource",
    "UsageError",
    "arrival_times",
    "parse_duration",
]


class UsageError(ValueError):
    """A bad command-line value; the message names the option and shows a valid example."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str | float | int, option: str = "duration") -> float:
    """``"90s"``, ``"2m"``, ``"500ms"``, ``"1h"`` or a bare number of seconds."""
    if isinstance(text, int | float):
        value = float(text)
    else:
        m = _DURATION.match(str(text))
        if m is None:
            raise UsageError(f"{option}: {text!r} is not a duration; use e.g. 90s, 2m, 500ms or 1h")
        value = float(m.group(1)) * _UNIT_S[m.group(2)]
    if value < 0 or math.isnan(value):
        raise UsageError(f"{option}: {text!r} must not be negative")
    return value


@dataclass(frozen=True, slots=True)
class Burst:
    """``5x:10s/60s``: ``factor`` times the base rate for ``length_s`` every ``every_s``,
    starting ``every_s - length_s`` into each period (a burst ends each period, so a short
    run still sees the base rate first)."""

    factor: float
    length_s: float
    every_s: float

    @classmethod
    def parse(cls, text: str) -> Burst:
        m = re.match(r"^\s*(\d+(?:\.\d*)?)x\s*:\s*([^/]+)/(.+)$", text)
        if m is None:
            raise UsageError(
                f"--burst {text!r}: expected FACTORx:LENGTH/EVERY, e.g. 5x:10s/60s "
                "(5 times the rate for 10 s every 60 s)"
            )
        factor = float(m.group(1))
        length = parse_duration(m.group(2), "--burst length")
        every = parse_duration(m.group(3), "--burst period")
        if factor <= 0 or length <= 0 or every <= 0 or length > every:
            raise UsageError(
                f"--burst {text!r}: need factor > 0 and 0 < length <= period, e.g. 5x:10s/60s"
            )
        return cls(factor, length, every)

    def active(self, t: float) -> bool:
        return (t % self.every_s) >= self.every_s - self.length_s

    def __str__(self) -> str:
        return f"{self.factor:g}x:{self.length_s:g}s/{self.every_s:g}s"


def rate_at(rate: float, burst: Burst | None, t: float) -> float:
    return rate * burst.factor if burst is not None and burst.active(t) else rate


def arrival_times(
    rate: float, duration_s: float, burst: Burst | None = None, rng: random.Random | None = None
) -> list[float]:
    """Intended start offsets (seconds) of a Poisson process with a piecewise-constant rate.

    Between rate changes the gaps are exponential; at a change the process restarts, which
    is exact because the exponential distribution is memoryless."""
    if rate <= 0:
        raise UsageError(f"--rps {rate:g}: must be greater than 0")
    rng = rng or random.Random()
    edges = [0.0, duration_s]
    if burst is not None:
        start = burst.every_s - burst.length_s
        k = 0
        while k * burst.every_s < duration_s:
            for edge in (k * burst.every_s + start, (k + 1) * burst.every_s):
                if 0.0 < edge < duration_s:
                    edges.append(edge)
            k += 1
    edges = sorted(set(edges))
    out: list[float] = []
    for lo, hi in itertools.pairwise(edges):
        r = rate_at(rate, burst, (lo + hi) / 2)
        t = lo + rng.expovariate(r)
        while t < hi:
            out.append(t)
            t += rng.expovariate(r)
    return out


@dataclass(frozen=True, slots=True)
class LengthDist:
    """A token-count distribution: ``lognormal:mean=800,sigma=1.0`` (arithmetic mean),
    ``fixed:200``, ``uniform:min=50,max=400`` or ``pareto:min=100,alpha=1.5``; every draw
    is clipped to ``[1, max]`` (``max=`` is accepted by every kind, default 100,000)."""

    kind: str
    params: Mapping[str, float]

    _KINDS = {
        "lognormal": ("mean", "sigma"),
        "fixed": ("value",),
        "uniform": ("min", "max"),
        "pareto": ("min", "alpha"),
    }

    @classmethod
    def parse(cls, text: str, option: str = "--prompts") -> LengthDist:
        kind, _, rest = text.strip().partition(":")
        kind = kind.lower()
        example = "lognormal:mean=800,sigma=1.0, fixed:200, uniform:min=50,max=400"
        if kind not in cls._KINDS:
            raise UsageError(f"{option} {text!r}: unknown distribution {kind!r}; use {example}")
        params: dict[str, float] = {}
        for i, part in enumerate(p for p in rest.split(",") if p.strip()):
            name, eq, value = part.partition("=")
            if not eq:
                if kind == "fixed" and i == 0:
                    name, value = "value", name
                else:
                    raise UsageError(f"{option} {text!r}: {part!r} is not NAME=NUMBER")
            try:
                params[name.strip()] = float(value)
            except ValueError:
                raise UsageError(
                    f"{option} {text!r}: {name.strip()}={value!r} is not a number"
                ) from None
        needed = cls._KINDS[kind]
        missing = [n for n in needed if n not in params]
        unknown = set(params) - set(needed) - {"max"}
        if missing or unknown:
            raise UsageError(
                f"{option} {text!r}: {kind} takes {', '.join(needed)} (and optional max); "
                + (
                    f"missing {', '.join(missing)}"
                    if missing
                    else f"unknown {', '.join(sorted(unknown))}"
                )
            )
        if any(v < 0 for v in params.values()) or (kind == "pareto" and params["alpha"] <= 0):
            raise UsageError(f"{option} {text!r}: parameters must be positive")
        if kind == "uniform" and params["min"] > params["max"]:
            raise UsageError(f"{option} {text!r}: min must not exceed max")
        return cls(kind, params)

    def sample(self, rng: random.Random) -> int:
        p = self.params
        if self.kind == "fixed":
            x = p["value"]
        elif self.kind == "uniform":
            x = rng.uniform(p["min"], p["max"])
        elif self.kind == "pareto":
            x = p["min"] * rng.paretovariate(p["alpha"])
        else:  # lognormal with the given arithmetic mean: mu = ln(mean) - sigma^2 / 2
            sigma = p["sigma"]
            mu = math.log(max(p["mean"], 1e-9)) - sigma * sigma / 2
            x = rng.lognormvariate(mu, sigma)
        return int(min(max(round(x), 1), p.get("max", 100_000)))

    def __str__(self) -> str:
        return f"{self.kind}:" + ",".join(f"{k}={v:g}" for k, v in self.params.items())


# words that are one cl100k token each with their leading space, so n words ~ n tokens
_VOCAB = (
    "the",
    "order",
    "was",
    "shipped",
    "on",
    "time",
    "and",
    "the",
    "customer",
    "asked",
    "about",
    "the",
    "delivery",
    "of",
    "a",
    "parcel",
    "that",
    "never",
    "arrived",
    "at",
    "the",
    "address",
    "given",
    "in",
    "the",
    "account",
    "please",
    "check",
    "the",
    "status",
    "and",
    "tell",
    "me",
    "when",
    "it",
    "will",
    "come",
    "back",
    "with",
    "a",
    "refund",
    "or",
    "a",
    "new",
    "item",
    "for",
    "my",
    "family",
)


def filler(n_tokens: int, rng: random.Random) -> str:
    """Prose of about ``n_tokens`` tokens (one common word is one token)."""
    start = rng.randrange(len(_VOCAB))
    return " ".join(_VOCAB[(start + i) % len(_VOCAB)] for i in range(max(1, n_tokens)))


@dataclass(slots=True)
class Prompt:
    messages: list[dict[str, Any]]
    max_tokens: int | None = None


class PromptSource:
    """Draws the next request's messages and output budget."""

    def __init__(
        self,
        lengths: LengthDist | None = None,
        records: Sequence[Prompt] | None = None,
        output_tokens: LengthDist | None = None,
        stable_prefix_tokens: int = 0,
        stable_prefixes: int = 1,
    ) -> None:
        if (lengths is None) == (records is None):
            raise UsageError("give either --prompts DIST or --prompts-file FILE.jsonl, not both")
        if stable_prefix_tokens < 0:
            raise UsageError("--stable-prefix-tokens: must be 0 (none) or more")
        if stable_prefixes < 1:
            raise UsageError("--stable-prefixes: must be at least 1")
        self.lengths = lengths
        self.records = list(records or [])
        self.output_tokens = output_tokens
        self.stable_prefix_tokens = stable_prefix_tokens
        #: the stable prefixes, each a cache-marked system message (none: no prefix)
        self.prefixes: list[dict[str, Any]] = []
        for i in range(stable_prefixes if stable_prefix_tokens else 0):
            text = filler(stable_prefix_tokens, random.Random(f"stable-prefix-{i}"))
            self.prefixes.append({"role": "system", "content": text, "cache": True})

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        output_tokens: LengthDist | None = None,
        stable_prefix_tokens: int = 0,
        stable_prefixes: int = 1,
    ) -> PromptSource:
        """JSONL, one ``{"messages": [...]}`` or ``{"prompt": "..."}`` per line (optional
        ``"max_tokens"``)."""
        p = Path(path)
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise UsageError(f"--prompts-file {p}: cannot read it ({exc.strerror})") from None
        records: list[Prompt] = []
        for no, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UsageError(f"--prompts-file {p}:{no}: not JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise UsageError(f"--prompts-file {p}:{no}: expected a JSON object per line")
            msgs = obj.get("messages")
            if msgs is None and isinstance(obj.get("prompt"), str):
                msgs = [{"role": "user", "content": obj["prompt"]}]
            if (
                not isinstance(msgs, list)
                or not msgs
                or not all(isinstance(m, dict) and "role" in m for m in msgs)
            ):
                raise UsageError(
                    f'--prompts-file {p}:{no}: each line needs "messages" (a list of '
                    '{"role": ..., "content": ...}) or "prompt" (a string)'
                )
            mt = obj.get("max_tokens")
            if mt is not None and (not isinstance(mt, int) or mt < 1):
                raise UsageError(f"--prompts-file {p}:{no}: max_tokens must be a positive integer")
            records.append(Prompt(msgs, mt))
        if not records:
            raise UsageError(f"--prompts-file {p}: no prompts in the file")
        return cls(
            records=records,
            output_tokens=output_tokens,
            stable_prefix_tokens=stable_prefix_tokens,
            stable_prefixes=stable_prefixes,
        )

    def draw(self, rng: random.Random) -> Prompt:
        if self.lengths is not None:
            prompt = Prompt([{"role": "user", "content": filler(self.lengths.sample(rng), rng)}])
        else:
            prompt = rng.choice(self.records)
        if self.prefixes:  # a stable, cache-marked prefix before the varying part
            prefix = self.prefixes[rng.randrange(len(self.prefixes))]
            prompt = Prompt([prefix, *prompt.messages], prompt.max_tokens)
        if self.output_tokens is not None:
            return Prompt(prompt.messages, self.output_tokens.sample(rng))
        return prompt

    def describe(self) -> str:
        what = (
            str(self.lengths) if self.lengths is not None else f"file ({len(self.records)} prompts)"
        )
        if self.prefixes:
            what += (
                f" after one of {len(self.prefixes)} stable prefix(es) of "
                f"{self.stable_prefix_tokens} tokens"
            )
        return what
