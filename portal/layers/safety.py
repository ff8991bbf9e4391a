"""Safety guards: screen what goes to a vendor and what comes back, the same on every vendor.

A guard looks at the input messages before the call, the output text after it, and
(for RAG) retrieved documents, and answers with a `Decision`: allow, flag (seen, let
through), redact (rewritten) or block. `GuardChain` runs a feature's guards in order,
raises `PolicyViolation` on a block, and returns every decision so the caller can meter
it. Decisions carry counts by category and rule names, never the matched text.

Wiring, in a client::

    chain = GuardChain.from_config(["pii", "injection"])
    screened = chain.check_input(messages)          # may raise PolicyViolation
    response = call_vendor(screened.messages)
    out = chain.check_output(response.text, screened.vault)
    text, decisions = out.text, screened.decisions + out.decisions

The `Vault` maps placeholders such as ``[EMAIL_1]`` back to the values they replaced. It
lives in memory for one call only; its repr shows a count, never a value.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import difflib
import inspect
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from portal.contracts.messages import Message, Role, TextPart, coerce_messages
from portal.errors import ConfigError, PolicyViolation
from portal.layers.pii import CATEGORIES, Category, Finding, detect

__all__ = [
    "GUARDS",
    "Action",
    "Decision",
    "DenylistGuard",
    "Guard",
    "GuardBlocked",
    "GuardChain",
    "GuardResult",
    "InjectionGuard",
    "LengthGuard",
    "PIIGuard",
    "Stage",
    "StreamRestorer",
    "Vault",
    "build_guards",
    "injection_score",
    "register_guard",
    "restore",
    "restore_value",
]

Action = Literal["allow", "flag", "redact", "block"]
Stage = Literal["input", "output", "documents"]
_ALL_ROLES: tuple[Role, ...] = ("system", "user", "assistant", "tool")


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Decision:
    """What one guard decided about one stage of one call.

    ``counts`` is by category (``{"email": 2}``) or by rule (``{"ignore_instructions": 1}``);
    ``redacted_text`` is the rewritten output when an output check redacted (input rewrites
    are on `GuardResult.messages`). ``to_record()`` is what a ledger may store.
    """

    guard: str
    action: Action
    stage: Stage
    reason: str = ""
    counts: Mapping[str, int] = field(default_factory=dict)
    score: float | None = None
    restored: int = 0
    redacted_text: str | None = field(default=None, repr=False)

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready row for metering: no text of any kind."""
        row: dict[str, Any] = {
            "guard": self.guard,
            "action": self.action,
            "stage": self.stage,
            "counts": dict(self.counts),
        }
        if self.reason:
            row["reason"] = self.reason
        if self.score is not None:
            row["score"] = round(self.score, 3)
        if self.restored:
            row["restored"] = self.restored
        return row


@dataclass(frozen=True, slots=True)
class GuardResult:
    """The outcome of a check: the (possibly rewritten) payload plus every decision.

    Exactly one of ``messages`` (input), ``text`` (output) or ``documents`` is set; a
    dropped document is ``None`` at its index, so callers keep their own ids aligned.
    """

    decisions: tuple[Decision, ...]
    messages: list[Message] | None = None
    text: str | None = field(default=None, repr=False)
    documents: list[str | None] | None = field(default=None, repr=False)
    vault: Vault | None = None

    @property
    def blocked(self) -> Decision | None:
        """The first block decision, if any guard blocked."""
        return next((d for d in self.decisions if d.action == "block"), None)


class GuardBlocked(PolicyViolation):
    """A safety guard blocked the call; ``decisions`` holds every decision made so far."""

    def __init__(
        self, message: str, *, guard: str, reason: str, stage: Stage, decisions: Sequence[Decision]
    ) -> None:
        super().__init__(message, guard=guard, reason=reason)
        self.stage = stage
        self.decisions = tuple(decisions)


# ----------------------------------------------------------------------------- vault

_TAGS: dict[str, str] = {
    "email": "EMAIL",
    "phone": "PHONE",
    "card": "CARD",
    "iban": "IBAN",
    "ssn": "SSN",
    "ip": "IP",
    "secret": "SECRET",
}
_PLACEHOLDER = re.compile(r"\[(" + "|".join(_TAGS.values()) + r")_(\d+)\]")
_PLACEHOLDER_PREFIX = re.compile(r"\[[A-Z]*(?:_\d*)?$")


class Vault:
    """Placeholders of one call and the values they stand for; in memory, never logged.

    The same value gets the same placeholder within a call. Values redacted from the
    model's output are numbered here too (so numbers never clash) but are not restorable:
    the output guard hid them on purpose.
    """

    __slots__ = ("_by_placeholder", "_by_value", "_counters", "_taken")

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, tuple[str, bool]] = {}
        self._counters: Counter[str] = Counter()
        self._taken: set[str] = set()

    def reserve(self, texts: Iterable[str]) -> None:
        """Skip placeholders the caller's own text already contains, so restore is exact."""
        for t in texts:
            if "[" in t:
                self._taken.update(m.group(0) for m in _PLACEHOLDER.finditer(t))

    def placeholder(self, category: str, value: str, *, restorable: bool = True) -> str:
        key = (category, value)
        found = self._by_value.get(key)
        if found is not None:
            return found
        tag = _TAGS.get(category, category.upper())
        while True:
            self._counters[tag] += 1
            ph = f"[{tag}_{self._counters[tag]}]"
            if ph not in self._taken:
                break
        self._by_value[key] = ph
        self._by_placeholder[ph] = (value, restorable)
        return ph

    def original(self, placeholder: str) -> str | None:
        """The value a restorable placeholder stands for, or None."""
        entry = self._by_placeholder.get(placeholder)
        return entry[0] if entry and entry[1] else None

    def __len__(self) -> int:
        return len(self._by_placeholder)

    def __repr__(self) -> str:
        return f"<Vault {len(self)} placeholder(s)>"


def restore(text: str, vault: Vault) -> str:
    """Put the original values back where the model repeated their placeholders."""
    if "[" not in text or not len(vault):
        return text
    return _PLACEHOLDER.sub(lambda m: vault.original(m.group(0)) or m.group(0), text)


def _count_restorable(text: str, vault: Vault) -> int:
    return sum(1 for m in _PLACEHOLDER.finditer(text) if vault.original(m.group(0)) is not None)


def restore_value(value: Any, vault: Vault) -> Any:
    """`restore` through nested dicts and lists, e.g. tool-call arguments before running a tool."""
    if isinstance(value, str):
        return restore(value, vault)
    if isinstance(value, list):
        return [restore_value(v, vault) for v in value]
    if isinstance(value, dict):
        return {k: restore_value(v, vault) for k, v in value.items()}
    return value


class StreamRestorer:
    """`restore` over a stream of text deltas: holds back a possible half placeholder."""

    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._pending = ""

    def feed(self, delta: str) -> str:
        buf = self._pending + delta
        m = _PLACEHOLDER_PREFIX.search(buf[-16:]) if "[" in buf[-16:] else None
        if m is not None:
            cut = len(buf) - 16 + m.start() if len(buf) > 16 else m.start()
            self._pending, buf = buf[cut:], buf[:cut]
        else:
            self._pending = ""
        return restore(buf, self._vault)

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return restore(rest, self._vault)


# ----------------------------------------------------------------------------- protocol


@runtime_checkable
class Guard(Protocol):
    """A safety check. Pure, synchronous and fast: it runs on every call, on the hot path.

    ``vault`` is the call's placeholder store (the chain passes one per call); guards that
    do not redact ignore it. Return a block decision instead of raising: the chain raises.
    """

    name: str

    def check_input(self, messages: list[Message], vault: Vault | None = None) -> GuardResult: ...

    def check_output(self, text: str, vault: Vault | None = None) -> GuardResult: ...


def _message_texts(m: Message) -> list[str]:
    return [p.text for p in m.parts if isinstance(p, TextPart)]


def _rewrite_message(m: Message, fn: Callable[[str], str]) -> Message:
    """A copy of ``m`` with ``fn`` applied to its text and to strings in tool-call arguments."""
    content: str | list[Any] | None
    if isinstance(m.content, str):
        content = fn(m.content)
    elif isinstance(m.content, list):
        content = [TextPart(fn(p.text)) if isinstance(p, TextPart) else p for p in m.content]
    else:
        content = None
    calls = None
    if m.tool_calls:
        calls = [
            dataclasses.replace(c, arguments=_map_strings(c.arguments, fn)) for c in m.tool_calls
        ]
    return dataclasses.replace(m, content=content, tool_calls=calls)


def _map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [_map_strings(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: _map_strings(v, fn) for k, v in value.items()}
    return value


def _strings_in(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings_in(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings_in(v)


def _all_texts(m: Message) -> list[str]:
    texts = _message_texts(m)
    for c in m.tool_calls or ():
        texts.extend(_strings_in(c.arguments))
    return texts


def _describe(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


def _choice(where: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(
            f"{where}: {value!r} is not one of {', '.join(map(repr, allowed))}",
        )
    return str(value)


def _roles(where: str, roles: Iterable[str]) -> tuple[Role, ...]:
    out = tuple(roles)
    for r in out:
        _choice(f"{where}.roles", r, _ALL_ROLES)
    return out  # type: ignore[return-value]


# ----------------------------------------------------------------------------- PII


class PIIGuard:
    """Finds emails, phones, cards, IBANs, SSNs, IPs and secrets; redacts, blocks or flags.

    - ``mode="redact"`` swaps each value for a placeholder (``[CARD_1]``) before the vendor
      sees it; with ``restore=True`` the placeholders the model repeats are put back in
      the output for the caller.
    - ``mode="block"`` refuses any call that carries PII; ``mode="detect"`` only records it.
    - ``block=["secret"]`` blocks those categories even in redact or detect mode.
    - ``output=True`` also screens the model's answer (new PII there is redacted for good).
    """

    def __init__(
        self,
        mode: str = "redact",
        *,
        categories: Iterable[str] | None = None,
        restore: bool = False,
        block: Iterable[str] = (),
        roles: Iterable[str] = _ALL_ROLES,
        output: bool = True,
        name: str = "pii",
    ) -> None:
        self.name = name
        self.mode = _choice(f"{name}.mode", mode, ("redact", "block", "detect"))
        cats = tuple(categories) if categories is not None else CATEGORIES
        for c in (*cats, *block):
            _choice(f"{name}.categories", c, CATEGORIES)
        self.categories: tuple[Category, ...] = cats  # type: ignore[assignment]
        self.block = frozenset(block)
        self.restore = bool(restore)
        self.roles = _roles(name, roles)
        self.output = bool(output)

    def __repr__(self) -> str:
        return f"PIIGuard(mode={self.mode!r}, restore={self.restore})"

    def _verdict(self, stage: Stage, counts: Counter[str]) -> Decision | None:
        if not counts:
            return Decision(self.name, "allow", stage)
        blocking = Counter(
            {k: n for k, n in counts.items() if self.mode == "block" or k in self.block}
        )
        if blocking:
            reason = f"personal data or secrets in the {stage}: {_describe(blocking)}"
            return Decision(self.name, "block", stage, reason, dict(counts))
        if self.mode == "detect":
            return Decision(self.name, "flag", stage, f"found {_describe(counts)}", dict(counts))
        return None  # redact: the caller builds the decision with the rewritten payload

    def _redact(
        self,
        text: str,
        vault: Vault,
        counts: Counter[str],
        *,
        restorable: bool,
        seen: dict[str, list[Finding]] | None = None,
    ) -> str:
        found = seen.get(text) if seen is not None else None
        findings = found if found is not None else detect(text, self.categories)
        if not findings:
            return text
        out: list[str] = []
        pos = 0
        for f in findings:
            counts[f.category] += 1
            out.append(text[pos : f.start])
            out.append(vault.placeholder(f.category, f.value, restorable=restorable))
            pos = f.end
        out.append(text[pos:])
        return "".join(out)

    def _count(
        self, texts: Iterable[str], seen: dict[str, list[Finding]] | None = None
    ) -> Counter[str]:
        """Counts by category; ``seen`` keeps the findings so redaction does not re-scan."""
        counts: Counter[str] = Counter()
        for t in texts:
            findings = detect(t, self.categories)
            if seen is not None:
                seen[t] = findings
            counts.update(f.category for f in findings)
        return counts

    def check_input(self, messages: list[Message], vault: Vault | None = None) -> GuardResult:
        vault = vault if vault is not None else Vault()
        screened = [m for m in messages if m.role in self.roles]
        found: dict[str, list[Finding]] = {}
        counts = self._count((t for m in screened for t in _all_texts(m)), found)
        verdict = self._verdict("input", counts)
        if verdict is not None:
            return GuardResult((verdict,), messages=messages, vault=vault)
        seen: Counter[str] = Counter()
        out = [
            _rewrite_message(m, lambda t: self._redact(t, vault, seen, restorable=True, seen=found))
            if m.role in self.roles
            else m
            for m in messages
        ]
        decision = Decision(
            self.name, "redact", "input", f"redacted {_describe(counts)}", dict(counts)
        )
        return GuardResult((decision,), messages=out, vault=vault)

    def check_output(self, text: str, vault: Vault | None = None) -> GuardResult:
        restored = 0
        if self.output:
            found: dict[str, list[Finding]] = {}
            counts = self._count([text], found)
            verdict = self._verdict("output", counts)
            if verdict is not None and verdict.action == "block":
                return GuardResult((verdict,), text=text, vault=vault)
            if verdict is None:  # redact for good: these placeholders are never restored
                store = vault if vault is not None else Vault()
                text = self._redact(text, store, Counter(), restorable=False, seen=found)
                verdict = Decision(
                    self.name,
                    "redact",
                    "output",
                    f"redacted {_describe(counts)}",
                    dict(counts),
                    redacted_text=text,
                )
        else:
            verdict = Decision(self.name, "allow", "output")
        if self.restore and vault is not None and len(vault):
            restored = _count_restorable(text, vault)
            text = restore(text, vault)
            verdict = dataclasses.replace(verdict, restored=restored)
        return GuardResult((verdict,), text=text, vault=vault)


# ----------------------------------------------------------------------------- injection

_ZERO_WIDTH = re.compile("[\u200b\u2060\u180e\ufeff]")
_JOINERS_IN_LATIN = re.compile("(?<=[A-Za-z])[\u200c\u200d]+(?=[A-Za-z])")
_BIDI_OVERRIDE = re.compile("[\u202a-\u202e\u2066-\u2069]")
_TAG_RUN = re.compile("[\U000e0000-\U000e007f]+")
_INVISIBLE = re.compile(
    "[\u200b\u200c\u200d\u2060\u180e\ufeff\u202a-\u202e\u2066-\u2069\U000e0000-\U000e007f]"
)
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{24,}={0,2}(?![A-Za-z0-9+/=_-])")

_QUALIFIERS = frozenset(
    [
        "all",
        "any",
        "every",
        "previous",
        "prior",
        "above",
        "earlier",
        "preceding",
        "former",
        "initial",
        "original",
        "system",
        "developer",
        "your",
        "existing",
        "safety",
        "these",
        "those",
    ]
)
_IGNORE = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass|overrule|abandon)\b((?:\W+\w+){0,4}?)\W+"
    r"(?:instructions?|prompts?|rules|directions|directives|guidelines|guardrails|constraints|"
    r"programming|polic(?:y|ies)|restrictions|messages)\b"
)
_RULES: tuple[tuple[str, float, re.Pattern[str]], ...] = (
    (
        "forget_everything",
        0.8,
        re.compile(
            r"\b(?:forget|disregard|ignore)\b (?:everything|all|anything) "
            r"(?:above|before this|you(?:'ve| have)? (?:were |been )?(?:told|taught|learned))"
        ),
    ),
    (
        "reveal_system_prompt",
        0.8,
        re.compile(
            r"\b(?:reveal|show|print|repeat|output|display|leak|dump|tell me|give me|share|"
            r"write out|spell out|recite|return|what (?:is|are|was|were))\b[^.?!\n]{0,40}?"
            r"(?:system prompt|system message|system instructions|initial prompt|"
            r"initial instructions|original instructions|hidden (?:instructions|prompt)|"
            r"secret instructions|developer (?:message|prompt|instructions)|"
            r"(?:your|the) (?:prompt|instructions) (?:verbatim|word for word|exactly)|"
            r"(?:text|words|everything|instructions) above)"
        ),
    ),
    (
        "role_hijack",
        0.85,
        re.compile(
            r"\byou are (?:now|no longer)\b[^.\n]{0,40}?\b(?:dan|jailbroken|unrestricted|"
            r"unfiltered|uncensored|evil|in developer mode|not bound|free from|"
            r"without (?:any )?(?:restrictions|limits|filters|rules|guidelines))"
            r"|\b(?:do anything now|developer mode (?:enabled|on|activated)|"
            r"jailbreak(?:ed)? mode|dan mode)\b"
            r"|\b(?:act|pretend|behave|roleplay|role-play)\b (?:as|to be|like)\b[^.\n]{0,40}?"
            r"\b(?:no|without) (?:any )?(?:restrictions|limits|filters|rules|guidelines|"
            r"ethics|morals|censorship)"
        ),
    ),
    (
        "fake_role_token",
        0.95,
        re.compile(
            r"<\|(?:im_start|im_end|system|user|assistant|endoftext|start_header_id|"
            r"end_header_id|eot_id)\|>|\[/?inst\]|<</?sys>>"
        ),
    ),
    (
        "new_instructions",
        0.6,
        re.compile(
            r"\b(?:new|updated|revised|real|actual|override) (?:system )?"
            r"(?:instructions|rules|directives)\s*:|\bend of (?:the )?(?:system )?"
            r"(?:prompt|instructions)\b"
        ),
    ),
    (
        "new_persona",
        0.4,
        re.compile(r"\bfrom now on,? you (?:are|will be|must act|shall be)\b"),
    ),
    (
        "decode_and_follow",
        0.6,
        re.compile(
            r"\bdecode\b[^.\n]{0,40}\b(?:base64|b64)\b[^.\n]{0,40}\b"
            r"(?:follow|execute|run|obey|do what)"
        ),
    ),
)
_ROLE_LINE = re.compile(
    r"(?m)^[ \t>]*(?:#{1,3}[ \t]*)?\[?(?:system|developer|assistant)\]?[ \t]*"
    r"(?:message|prompt)?[ \t]*:(.*)$"
)
_ROLE_LINE_IMPERATIVE = re.compile(
    r"\b(?:you|your|ignore|must|always|never|from now on|instructions|reveal|respond|"
    r"answer|assistant|override|disregard|do not|don't)\b"
)


def _normalize(text: str) -> str:
    t = unicodedata.normalize("NFKC", text)
    t = _INVISIBLE.sub("", t).casefold()
    return re.sub(r"[^\S\n]+", " ", t)


def _phrase_hits(norm: str) -> dict[str, float]:
    hits: dict[str, float] = {}
    for m in _IGNORE.finditer(norm):
        words = set(re.findall(r"\w+", m.group(1)))
        if words & _QUALIFIERS:
            hits["ignore_instructions"] = 0.9
            break
    for name, weight, pat in _RULES:
        if pat.search(norm):
            hits[name] = weight
    for m in _ROLE_LINE.finditer(norm):
        if _ROLE_LINE_IMPERATIVE.search(m.group(1)):
            hits["injected_role_line"] = 0.8
            break
        hits["role_label"] = 0.25
    return hits


def _hidden_hits(text: str) -> tuple[dict[str, float], list[str]]:
    """Signals from invisible characters, plus any text they smuggle (decoded tag chars)."""
    hits: dict[str, float] = {}
    smuggled: list[str] = []
    for m in _TAG_RUN.finditer(text):
        before = text[m.start() - 1] if m.start() else ""
        run = m.group(0)
        decoded = "".join(chr(ord(c) - 0xE0000) for c in run if 0xE0020 <= ord(c) <= 0xE007E)
        if before == "\U0001f3f4" and run.endswith("\U000e007f") and len(decoded) <= 6:
            continue  # a subdivision flag emoji such as England's
        hits["hidden_tag_text"] = 0.9
        if decoded:
            smuggled.append(decoded)
    zero_width = len(_ZERO_WIDTH.findall(text.lstrip("\ufeff"))) + len(
        _JOINERS_IN_LATIN.findall(text)
    )
    if zero_width >= 3:
        hits["zero_width_chars"] = 0.35
    if _BIDI_OVERRIDE.search(text):
        hits["bidi_override"] = 0.5
    return hits, smuggled


def _base64_payloads(text: str) -> list[str]:
    out = []
    for m in _BASE64.finditer(text):
        blob = m.group(0)
        if blob.isalpha() or blob.isdigit():
            continue
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), altchars=b"-_", validate=False)
        except (binascii.Error, ValueError):
            continue
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        printable = sum(ch.isprintable() or ch in "\n\t" for ch in decoded)
        if decoded and printable / len(decoded) > 0.9:
            out.append(decoded)
    return out


def injection_score(text: str) -> tuple[float, dict[str, float]]:
    """How likely ``text`` is a prompt injection (0..1), and the rules that fired.

    Rules combine as independent evidence: score = 1 - prod(1 - weight).
    """
    if not text:
        return 0.0, {}
    hits, smuggled = _hidden_hits(text)
    hits.update(_phrase_hits(_normalize(text)))
    for hidden in smuggled:
        if _phrase_hits(_normalize(hidden)):
            hits["hidden_instructions"] = 1.0
    if len(text) >= 24:
        for decoded in _base64_payloads(text):
            inner = _phrase_hits(_normalize(decoded))
            if any(w >= 0.6 for w in inner.values()):
                hits["base64_instructions"] = 0.95
                break
    miss = 1.0
    for w in hits.values():
        miss *= 1.0 - w
    return 1.0 - miss, hits


class InjectionGuard:
    """Heuristics for prompt injection in user input, tool results and retrieved documents.

    Catches "ignore previous instructions", requests for the system prompt, role hijacking
    (DAN, fake ``<|im_start|>`` tokens, ``system:`` lines), hidden text (Unicode tag
    characters, zero-width runs, bidi overrides) and instructions inside base64 blobs.
    A text scoring at or above ``threshold`` is blocked (``mode="block"``) or only
    recorded (``mode="flag"``). Documents scoring that high are dropped by default.
    """

    def __init__(
        self,
        mode: str = "block",
        *,
        threshold: float = 0.7,
        roles: Iterable[str] = ("user", "tool"),
        documents: str = "drop",
        name: str = "injection",
    ) -> None:
        self.name = name
        self.mode = _choice(f"{name}.mode", mode, ("block", "flag"))
        if not isinstance(threshold, (int, float)) or not 0.0 < threshold <= 1.0:
            raise ConfigError(f"{name}.threshold: {threshold!r} must be a number in (0, 1]")
        self.threshold = float(threshold)
        self.roles = _roles(name, roles)
        self.documents = _choice(f"{name}.documents", documents, ("drop", "block", "flag"))

    def __repr__(self) -> str:
        return f"InjectionGuard(mode={self.mode!r}, threshold={self.threshold})"

    def _decide(self, stage: Stage, texts: Iterable[str], action: str) -> Decision:
        best = 0.0
        rules: Counter[str] = Counter()
        for t in texts:
            score, hits = injection_score(t)
            best = max(best, score)
            if score >= self.threshold:
                rules.update(hits.keys())
        if best < self.threshold:
            return Decision(self.name, "allow", stage, score=best)
        reason = f"prompt injection suspected in the {stage} (score {best:.2f}): " + ", ".join(
            sorted(rules)
        )
        act: Action = "block" if action == "block" else "flag"
        return Decision(self.name, act, stage, reason, dict(rules), score=best)

    def check_input(self, messages: list[Message], vault: Vault | None = None) -> GuardResult:
        texts = (t for m in messages if m.role in self.roles for t in _message_texts(m))
        return GuardResult(
            (self._decide("input", texts, self.mode),), messages=messages, vault=vault
        )

    def check_output(self, text: str, vault: Vault | None = None) -> GuardResult:
        """Model output is not an injection vector for this call; recorded as allowed."""
        return GuardResult((Decision(self.name, "allow", "output"),), text=text, vault=vault)

    def check_documents(self, texts: Sequence[str]) -> GuardResult:
        """Score each retrieved document; drop, flag or block the suspicious ones."""
        kept: list[str | None] = []
        decisions: list[Decision] = []
        dropped = 0
        for t in texts:
            d = self._decide("documents", [t], "block" if self.documents == "block" else "flag")
            if d.action == "block":
                return GuardResult((d,), documents=list(texts))
            if d.action == "flag" and self.documents == "drop":
                dropped += 1
                kept.append(None)
                decisions.append(dataclasses.replace(d, action="redact"))
                continue
            kept.append(t)
            if d.action == "flag":
                decisions.append(d)
        if not decisions:
            decisions.append(Decision(self.name, "allow", "documents"))
        elif dropped:
            rules: Counter[str] = Counter()
            for d in decisions:
                rules.update(d.counts)
            decisions = [
                Decision(
                    self.name,
                    "redact",
                    "documents",
                    f"dropped {dropped} of {len(texts)} document(s): prompt injection suspected",
                    dict(rules),
                    score=max(d.score or 0.0 for d in decisions),
                )
            ]
        return GuardResult(tuple(decisions), documents=kept)


# ----------------------------------------------------------------------------- denylist


class DenylistGuard:
    """Terms (case-insensitive, whole words) and regexes a feature must never send or show."""

    def __init__(
        self,
        terms: Iterable[str] = (),
        patterns: Iterable[str] = (),
        *,
        action: str = "block",
        roles: Iterable[str] = ("user", "tool"),
        output: bool = True,
        name: str = "denylist",
    ) -> None:
        self.name = name
        self.action = _choice(f"{name}.action", action, ("block", "redact", "flag"))
        self.roles = _roles(name, roles)
        self.output = bool(output)
        term_list = [t for t in terms if t and t.strip()]
        parts = []
        for t in sorted(term_list, key=len, reverse=True):
            lead = r"\b" if t[0].isalnum() or t[0] == "_" else ""
            tail = r"\b" if t[-1].isalnum() or t[-1] == "_" else ""
            parts.append(lead + re.escape(t) + tail)
        self._terms = re.compile("|".join(parts), re.IGNORECASE) if parts else None
        self._patterns: list[re.Pattern[str]] = []
        for i, p in enumerate(patterns):
            try:
                self._patterns.append(re.compile(p))
            except re.error as exc:
                raise ConfigError(
                    f"{name}.patterns[{i}]: not a valid regular expression ({exc}); "
                    "fix it or escape special characters"
                ) from exc
        if self._terms is None and not self._patterns:
            raise ConfigError(f"{name}: give terms=[...] or patterns=[...] to deny")

    def __repr__(self) -> str:
        n = len(self._patterns)
        return f"DenylistGuard(action={self.action!r}, patterns={n})"

    def _scan(self, text: str, counts: Counter[str]) -> str:
        if self._terms is not None:
            text, n = self._terms.subn("[REDACTED]", text)
            counts["term"] += n
        for p in self._patterns:
            text, n = p.subn("[REDACTED]", text)
            counts["pattern"] += n
        return text

    def _decision(self, stage: Stage, counts: Counter[str], text: str | None = None) -> Decision:
        counts = +counts
        if not counts:
            return Decision(self.name, "allow", stage)
        act: Action = "redact" if self.action == "redact" else self.action  # type: ignore[assignment]
        verb = {"block": "denied", "redact": "redacted", "flag": "found"}[self.action]
        return Decision(
            self.name,
            act,
            stage,
            f"{verb} {_describe(counts)} match(es) in the {stage}",
            dict(counts),
            redacted_text=text if act == "redact" else None,
        )

    def check_input(self, messages: list[Message], vault: Vault | None = None) -> GuardResult:
        counts: Counter[str] = Counter()
        out = [
            _rewrite_message(m, lambda t: self._scan(t, counts)) if m.role in self.roles else m
            for m in messages
        ]
        decision = self._decision("input", counts)
        return GuardResult(
            (decision,), messages=out if decision.action == "redact" else messages, vault=vault
        )

    def check_output(self, text: str, vault: Vault | None = None) -> GuardResult:
        if not self.output:
            return GuardResult((Decision(self.name, "allow", "output"),), text=text, vault=vault)
        counts: Counter[str] = Counter()
        redacted = self._scan(text, counts)
        decision = self._decision("output", counts, redacted)
        final = redacted if decision.action == "redact" else text
        return GuardResult((decision,), text=final, vault=vault)


# ----------------------------------------------------------------------------- length


class LengthGuard:
    """Caps on characters in (all message text) and out, before tokens are spent."""

    def __init__(
        self,
        max_input_chars: int | None = None,
        max_output_chars: int | None = None,
        *,
        name: str = "length",
    ) -> None:
        self.name = name
        for key, val in (
            ("max_input_chars", max_input_chars),
            ("max_output_chars", max_output_chars),
        ):
            if val is not None and (not isinstance(val, int) or isinstance(val, bool) or val <= 0):
                raise ConfigError(f"{name}.{key}: {val!r} must be a positive integer")
        if max_input_chars is None and max_output_chars is None:
            raise ConfigError(f"{name}: set max_input_chars and/or max_output_chars")
        self.max_input_chars = max_input_chars
        self.max_output_chars = max_output_chars

    def __repr__(self) -> str:
        return (
            f"LengthGuard(max_input_chars={self.max_input_chars}, "
            f"max_output_chars={self.max_output_chars})"
        )

    def _decide(self, stage: Stage, n: int, limit: int | None, key: str) -> Decision:
        if limit is None or n <= limit:
            return Decision(self.name, "allow", stage, counts={"chars": n})
        reason = f"the {stage} is {n:,} characters; the limit is {limit:,} ({key})"
        return Decision(self.name, "block", stage, reason, {"chars": n})

    def check_input(self, messages: list[Message], vault: Vault | None = None) -> GuardResult:
        n = sum(len(t) for m in messages for t in _message_texts(m))
        d = self._decide("input", n, self.max_input_chars, "max_input_chars")
        return GuardResult((d,), messages=messages, vault=vault)

    def check_output(self, text: str, vault: Vault | None = None) -> GuardResult:
        d = self._decide("output", len(text), self.max_output_chars, "max_output_chars")
        return GuardResult((d,), text=text, vault=vault)


# ----------------------------------------------------------------------------- chain


class GuardChain:
    """A feature's guards, run in order. A block raises; everything else accumulates."""

    def __init__(self, guards: Iterable[Guard]) -> None:
        self.guards: tuple[Guard, ...] = tuple(guards)

    @classmethod
    def from_config(
        cls, specs: Sequence[str | Mapping[str, Any] | Guard], *, where: str = "safety"
    ) -> GuardChain:
        return cls(build_guards(specs, where=where))

    def __len__(self) -> int:
        return len(self.guards)

    def __repr__(self) -> str:
        return f"GuardChain([{', '.join(g.name for g in self.guards)}])"

    @staticmethod
    def _raise(stage: Stage, decision: Decision, decisions: Sequence[Decision]) -> None:
        raise GuardBlocked(
            f"safety guard {decision.guard!r} blocked the {stage}: {decision.reason}",
            guard=decision.guard,
            reason=decision.reason,
            stage=stage,
            decisions=decisions,
        )

    def check_input(self, messages: Sequence[Message | Mapping[str, Any]]) -> GuardResult:
        """Screen messages before the call; returns the messages to send and a fresh vault."""
        msgs = coerce_messages(messages)
        vault = Vault()
        vault.reserve(t for m in msgs for t in _all_texts(m))
        decisions: list[Decision] = []
        for g in self.guards:
            r = g.check_input(msgs, vault=vault)
            decisions.extend(r.decisions)
            if r.blocked is not None:
                self._raise("input", r.blocked, decisions)
            if r.messages is not None:
                msgs = r.messages
        return GuardResult(tuple(decisions), messages=msgs, vault=vault)

    def check_output(self, text: str, vault: Vault | None = None) -> GuardResult:
        """Screen the model's text; with the input's vault, guards can restore placeholders."""
        decisions: list[Decision] = []
        for g in self.guards:
            r = g.check_output(text, vault=vault)
            decisions.extend(r.decisions)
            if r.blocked is not None:
                self._raise("output", r.blocked, decisions)
            if r.text is not None:
                text = r.text
        return GuardResult(tuple(decisions), text=text, vault=vault)

    def check_documents(self, texts: Sequence[str]) -> GuardResult:
        """Screen retrieved documents; ``documents[i]`` is None where a guard dropped one."""
        docs: list[str | None] = list(texts)
        decisions: list[Decision] = []
        for g in self.guards:
            check = getattr(g, "check_documents", None)
            if check is None:
                continue
            live = [i for i, d in enumerate(docs) if d is not None]
            r: GuardResult = check([docs[i] for i in live])
            decisions.extend(r.decisions)
            if r.blocked is not None:
                self._raise("documents", r.blocked, decisions)
            if r.documents is not None:
                for i, new in zip(live, r.documents, strict=True):
                    docs[i] = new
        return GuardResult(tuple(decisions), documents=docs)


# ----------------------------------------------------------------------------- registry

GUARDS: dict[str, Callable[..., Guard]] = {
    "denylist": DenylistGuard,
    "injection": InjectionGuard,
    "length": LengthGuard,
    "pii": PIIGuard,
}


def register_guard(name: str, factory: Callable[..., Guard]) -> None:
    """Make a custom guard usable by name in config (``safety = ["my-guard"]``)."""
    if not name or not isinstance(name, str):
        raise ConfigError("register_guard: name must be a non-empty string")
    GUARDS[name] = factory


def _unknown(where: str, name: str) -> ConfigError:
    known = sorted(GUARDS)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"{where}: unknown guard {name!r}{hint} Known guards: {', '.join(known)}")


def _options(factory: Callable[..., Any]) -> set[str] | None:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL}


def build_guards(
    names_or_specs: Sequence[str | Mapping[str, Any] | Guard], *, where: str = "safety"
) -> list[Guard]:
    """Guards from config: ``"pii"`` or ``{"name": "pii", "mode": "block"}``, in order."""
    if isinstance(names_or_specs, (str, bytes, Mapping)):
        raise ConfigError(f'{where}: expected a list of guards, e.g. safety = ["pii", "injection"]')
    guards: list[Guard] = []
    for i, spec in enumerate(names_or_specs):
        here = f"{where}[{i}]"
        if isinstance(spec, str):
            name, kwargs = spec, {}
        elif isinstance(spec, Mapping):
            if "name" not in spec:
                raise ConfigError(f'{here}: a guard table needs name = "...", e.g. name = "pii"')
            name = spec["name"]
            kwargs = {k: v for k, v in spec.items() if k != "name"}
        elif isinstance(spec, Guard):
            guards.append(spec)
            continue
        else:
            raise ConfigError(
                f"{here}: expected a guard name or a table, got {type(spec).__name__}"
            )
        factory = GUARDS.get(name)
        if factory is None:
            raise _unknown(here, str(name))
        allowed = _options(factory)
        if allowed is not None:
            allowed.discard("name")
            extra = sorted(set(kwargs) - allowed)
            if extra:
                raise ConfigError(
                    f"{here}: guard {name!r} has no option {', '.join(map(repr, extra))}; "
                    f"options: {', '.join(sorted(allowed))}"
                )
        try:
            guard = factory(**kwargs)
        except ConfigError as exc:
            raise ConfigError(f"{here}: {exc}") from exc
        except TypeError as exc:
            raise ConfigError(f"{here}: guard {name!r}: {exc}") from exc
        guards.append(guard)
    return guards
