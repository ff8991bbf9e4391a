"""Detectors for personal data and secrets, used by the PII guard.

Each detector is a compiled regex that proposes candidates plus a validator that rejects
look-alikes: card numbers must pass Luhn, carry a known brand prefix and length, and be
grouped like a card; IBANs must have their country's length and pass mod-97; SSNs must
avoid the ranges the SSA never issues. For the formats without a checksum (phone numbers,
SSNs, IP addresses) context words right before a number ("order", "SKU", "version") veto a
match, because order numbers, product codes and version strings are their common false
positives in support traffic. Cards have a checksum, so no word vetoes one: a number that
passes Luhn with a card's prefix, length and grouping is a card whatever it is called.

`detect(text)` returns non-overlapping findings; where two detectors claim the same span,
the more specific one wins (secret > iban > card > ssn > email > ip > phone).
A `Finding` never shows its value in its repr: it is the PII itself.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "CATEGORIES",
    "Category",
    "Finding",
    "detect",
    "iban_valid",
    "luhn_valid",
    "ssn_valid",
]

Category = Literal["secret", "iban", "card", "ssn", "email", "ip", "phone"]
#: every category, in the order that resolves overlaps (first wins)
CATEGORIES: tuple[Category, ...] = ("secret", "iban", "card", "ssn", "email", "ip", "phone")
_PRIORITY = {c: i for i, c in enumerate(CATEGORIES)}


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected value: its category and where it is. The value is hidden from repr."""

    category: Category
    start: int
    end: int
    value: str = field(repr=False)


# ----------------------------------------------------------------------------- helpers


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check that every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# Registered IBAN lengths per country (SWIFT IBAN registry).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_valid(iban: str) -> bool:
    """Country length and the ISO 13616 mod-97 check (spaces ignored, any case)."""
    s = iban.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(s[:2]) != len(s) or not s[2:4].isdigit() or not s.isalnum():
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """US SSN ranges the SSA issues: area not 000/666/900-999, group not 00, serial not 0000."""
    a = int(area)
    return a != 0 and a != 666 and a < 900 and group != "00" and serial != "0000"


def _context_before(text: str, start: int, width: int = 28) -> str:
    """The words just before a match, same line, lower-cased: what the number is called."""
    before = _CLAUSE_BREAK.split(text[max(0, start - width) : start])[-1]
    return before.lower()


_CLAUSE_BREAK = re.compile(r"[.!?;,]\s|\n")


def _last_keyword(context: str, vocab: re.Pattern[str]) -> str | None:
    found = None
    for m in vocab.finditer(context):
        found = m.group(0)
    return found


# ----------------------------------------------------------------------------- secrets

_SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    # PEM private keys (RSA, EC, OPENSSH, ENCRYPTED, PGP ...); an unterminated block runs to
    # the end of its base64 lines
    re.compile(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"|(?:\s*[A-Za-z0-9+/=:\-, ]+)*)"
    ),
    # Anthropic keys: sk-ant-api03-..., sk-ant-admin01-...
    re.compile(r"(?<![\w-])sk-ant-[A-Za-z0-9_-]{20,}"),
    # OpenAI keys: sk-..., sk-proj-..., sk-svcacct-..., sk-admin-...
    re.compile(r"(?<![\w-])sk-(?!ant-)(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{20,}"),
    # Stripe secret and restricted keys
    re.compile(r"(?<![\w-])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"),
    # AWS access key ids
    re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    # GitHub tokens (classic and fine-grained)
    re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    # Google API keys
    re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}"),
    # Hugging Face access tokens
    re.compile(r"(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{30,}"),
    # Slack tokens and webhooks
    re.compile(r"(?<![A-Za-z0-9-])xox[abposre]-[0-9A-Za-z-]{10,}"),
    re.compile(r"(?<![A-Za-z0-9-])xapp-[0-9A-Za-z-]{10,}"),
    re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,}"),
)

# value-only secrets: the token after "Bearer", or after a key/password assignment
_BEARER = re.compile(r"(?i)\bbearer\s+([A-Za-z0-9\-._~+/]{16,}=*)")
_ASSIGNED = re.compile(
    r"(?i)\b(?:api[_-]?key|secret(?:[_-]?key)?|access[_-]?key|auth[_-]?token|token|"
    r"password|passwd|pwd|client[_-]?secret|aws_secret_access_key)\b[\"']?\s*[:=]\s*[\"']?"
    r"([^\s\"',;]{8,})"
)


def _has_digit(s: str) -> bool:
    return any(ch.isdigit() for ch in s)


def _find_secrets(text: str) -> Iterator[Finding]:
    for pat in _SECRET_PATTERNS:
        for m in pat.finditer(text):
            value = m.group(0).rstrip()
            yield Finding("secret", m.start(), m.start() + len(value), value)
    for m in _BEARER.finditer(text):
        token = m.group(1)
        if _has_digit(token):
            yield Finding("secret", m.start(1), m.end(1), token)
    for m in _ASSIGNED.finditer(text):
        value = m.group(1)
        masked = set(value) <= set("*xX•.")
        if not masked and (_has_digit(value) or len(value) >= 16):
            yield Finding("secret", m.start(1), m.end(1), value)


# ----------------------------------------------------------------------------- email

_FILE_EXTENSIONS = frozenset(
    [
        "png",
        "jpg",
        "jpeg",
        "gif",
        "svg",
        "webp",
        "bmp",
        "ico",
        "pdf",
        "js",
        "ts",
        "css",
        "html",
        "htm",
        "json",
        "yaml",
        "yml",
        "txt",
        "md",
        "py",
    ]
)
_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9][A-Za-z0-9._%+-]*@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})(?![\w-])"
)


def _find_emails(text: str) -> Iterator[Finding]:
    for m in _EMAIL.finditer(text):
        if m.group(1).lower() in _FILE_EXTENSIONS:
            continue  # icon@2x.png
        yield Finding("email", m.start(), m.end(), m.group(0))


# ----------------------------------------------------------------------------- cards

# a run of digit groups joined by one or two spaces, a dash or a dot
_CARD_SEP = re.compile(r"( {1,2}|[.-])")
_DIGIT_RUN = re.compile(r"(?<![\w.,/:+#-])\d+(?:(?: {1,2}|[.-])\d+)*(?![\w/:])(?![.,]\d)")


def _card_brand_ok(d: str) -> bool:
    """Known issuer prefix with one of that brand's lengths (rejects timestamps and ids)."""
    n = len(d)
    p2, p4 = int(d[:2]), int(d[:4])
    if d[0] == "4":  # Visa
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:  # Mastercard
        return n == 16
    if p2 in (34, 37):  # Amex
        return n == 15
    if d.startswith("6011") or p2 == 65 or 644 <= int(d[:3]) <= 649:  # Discover
        return 16 <= n <= 19
    if 3528 <= p4 <= 3589:  # JCB
        return 16 <= n <= 19
    if 300 <= int(d[:3]) <= 305 or p2 in (36, 38, 39) or d.startswith("3095"):  # Diners
        return 14 <= n <= 19
    if p2 == 62:  # UnionPay
        return 16 <= n <= 19
    if p2 in (50, 56, 57, 58, 63, 67):  # Maestro
        return 12 <= n <= 19
    return False


def _card_grouping_ok(groups: list[str]) -> bool:
    """Cards are typed as one run, in fours (4-4-4-4[-3]), or Amex/Diners 4-6-5 / 4-6-4."""
    if len(groups) == 1:
        return True
    sizes = [len(g) for g in groups]
    if sizes[:2] == [4, 6] and len(sizes) == 3 and sizes[2] in (4, 5):
        return True
    return all(s == 4 for s in sizes[:-1]) and 1 <= sizes[-1] <= 4


def _is_card(groups: list[str]) -> bool:
    d = "".join(groups)
    return 13 <= len(d) <= 19 and _card_grouping_ok(groups) and _card_brand_ok(d) and luhn_valid(d)


def _find_cards(text: str) -> Iterator[Finding]:
    for m in _DIGIT_RUN.finditer(text):
        run = m.group(0)
        parts = _CARD_SEP.split(run)
        groups = parts[0::2]
        seps = parts[1::2]
        # offsets of each group inside the run
        offsets = []
        pos = 0
        for i, g in enumerate(groups):
            offsets.append(pos)
            pos += len(g) + (len(seps[i]) if i < len(seps) else 0)
        # the whole run first, then the longest card-shaped sub-runs (a card and its CVV)
        spans = sorted(
            ((i, j) for i in range(len(groups)) for j in range(i + 1, len(groups) + 1)),
            key=lambda ij: (-(ij[1] - ij[0]), ij[0]),
        )
        used = [False] * len(groups)
        for i, j in spans:
            if any(used[i:j]) or len(set(seps[i : j - 1])) > 1:
                continue  # taken, or mixed separators ("4111 1111-1111 1111" is not a card)
            if not _is_card(groups[i:j]):
                continue
            used[i:j] = [True] * (j - i)
            start = m.start() + offsets[i]
            end = m.start() + offsets[j - 1] + len(groups[j - 1])
            # no vote for the words around it: "account 4111 1111 1111 1111" is a card; a
            # number that passes Luhn with a card's prefix, length and grouping is treated as
            # one, since a false alarm costs a placeholder and a miss leaks a card
            yield Finding("card", start, end, text[start:end])


# ----------------------------------------------------------------------------- IBAN

_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}")


def _find_ibans(text: str) -> Iterator[Finding]:
    pos = 0
    while (m := _IBAN.search(text, pos)) is not None:
        pos = m.start() + 1
        found = _iban_at(text, m)
        if found is not None:
            pos = found.end
            yield found


def _iban_at(text: str, m: re.Match[str]) -> Finding | None:
    cand = m.group(0)
    want = _IBAN_LENGTHS.get(cand[:2].upper())
    if want is None:
        return None
    # take exactly the country's length of characters; it must end a group or the run
    count = 0
    end = None
    for k, ch in enumerate(cand):
        if ch != " ":
            count += 1
            if count == want:
                end = k + 1
                break
    if end is None:
        return None
    stop = m.start() + end
    if stop < len(text) and text[stop].isalnum():
        return None
    value = cand[:end]
    if " " in value and not all(len(g) == 4 for g in value.split(" ")[:-1]):
        return None  # printed IBANs come in groups of four
    return Finding("iban", m.start(), stop, value) if iban_valid(value) else None


# ----------------------------------------------------------------------------- SSN

_SSN = re.compile(r"(?<![\w.+/-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w/-]|[.,]\d)")
_SSN_BARE = re.compile(
    r"(?i)\b(?:ssn|social security(?: number| no\.?| #)?|ss#)\s*(?:is|:|#|=)?\s*(\d{9})\b"
)
_NOT_SSN_CONTEXT = re.compile(r"\b(?:order|ref|reference|ticket|case|sku|part|zip|po)\b|#")


def _find_ssns(text: str) -> Iterator[Finding]:
    for m in _SSN.finditer(text):
        if not ssn_valid(m.group(1), m.group(3), m.group(4)):
            continue
        if _last_keyword(_context_before(text, m.start(), 16), _NOT_SSN_CONTEXT):
            continue
        yield Finding("ssn", m.start(), m.end(), m.group(0))
    for m in _SSN_BARE.finditer(text):
        d = m.group(1)
        if ssn_valid(d[:3], d[3:5], d[5:]):
            yield Finding("ssn", m.start(1), m.end(1), d)


# ----------------------------------------------------------------------------- IP

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.:-]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w-]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:|:){1,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4}|:)"
    r"(?![\w:]|\.\d)"
)
_NOT_IP_CONTEXT = re.compile(
    r"\b(?:version|ver|v|firmware|fw|build|release|patch|rev|revision|section|chapter|clause|"
    r"sdk|api|os|ios|android|app|chrome|firefox|safari|edge|python|node|java)\b\.?\s*$"
)


def _find_ips(text: str) -> Iterator[Finding]:
    for m in _IPV4.finditer(text):
        if _NOT_IP_CONTEXT.search(_context_before(text, m.start(), 20)):
            continue
        yield Finding("ip", m.start(), m.end(), m.group(0))
    for m in _IPV6.finditer(text):
        cand = m.group(0)
        if not _has_digit(cand) or ("::" not in cand and cand.count(":") < 7):
            continue
        try:
            ipaddress.IPv6Address(cand)
        except ValueError:
            continue
        if cand.count(":") < 3 and not any(len(g) >= 3 for g in cand.split(":")):
            continue  # "1::2" and friends are too ambiguous to call an address
        yield Finding("ip", m.start(), m.end(), cand)


# ----------------------------------------------------------------------------- phone

_PHONE_INTL = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,5})){1,6}(?![\w]|[.,-]\d)"
)
_PHONE_NANP = re.compile(
    r"(?<![\w+.-])(?:1[ .-]?)?(?:\([2-9]\d{2}\)[ ]?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}"
    r"(?![\w-]|[.,]\d)"
)
_PHONE_NATIONAL = re.compile(
    r"(?<![\w+.\-/])(?:\(0\d{1,4}\)|0\d{1,4})(?:[ -]\d{2,8}){1,4}(?![\w\-/]|[.,]\d)"
    r"|(?<![\w.])0[1-9](?:\.\d{2}){4}(?![\w.])"
)
_PHONE_BARE = re.compile(
    r"(?i)\b(?:phone|tel|telephone|mobile|cell|call me at|text me at|fax|whatsapp)"
    r"\b[^\d\n+]{0,12}(\d{10,11})\b"
)
_NOT_PHONE_CONTEXT = re.compile(
    r"\b(?:sku|part|p/n|pn|model|item|product|order|ref|reference|serial|isbn|invoice|"
    r"ticket|case|tracking|code|article|lot|batch)\b|#"
)


def _digits(s: str) -> int:
    return sum(ch.isdigit() for ch in s)


def _find_phones(text: str) -> Iterator[Finding]:
    def ok(start: int) -> bool:
        return not _last_keyword(_context_before(text, start, 20), _NOT_PHONE_CONTEXT)

    for m in _PHONE_INTL.finditer(text):
        if not ok(m.start()):
            continue
        # the regex may run into a following number; offer each prefix that ends a group
        # and has E.164's 8-15 digits, longest first, and let overlap resolution pick
        value = m.group(0)
        for cut in [len(value), *(k for k in range(len(value) - 1, 0, -1) if value[k] in " .-")]:
            prefix = value[:cut].rstrip(" .-")
            if 8 <= _digits(prefix) <= 15 and prefix[-1].isdigit():
                yield Finding("phone", m.start(), m.start() + len(prefix), prefix)
    for m in _PHONE_NANP.finditer(text):
        if ok(m.start()):
            yield Finding("phone", m.start(), m.end(), m.group(0))
    for m in _PHONE_NATIONAL.finditer(text):
        if 10 <= _digits(m.group(0)) <= 11 and ok(m.start()):
            yield Finding("phone", m.start(), m.end(), m.group(0))
    for m in _PHONE_BARE.finditer(text):
        yield Finding("phone", m.start(1), m.end(1), m.group(1))


# ----------------------------------------------------------------------------- driver

_DETECTORS: dict[Category, Callable[[str], Iterator[Finding]]] = {
    "secret": _find_secrets,
    "iban": _find_ibans,
    "card": _find_cards,
    "ssn": _find_ssns,
    "email": _find_emails,
    "ip": _find_ips,
    "phone": _find_phones,
}


def detect(text: str, categories: Iterable[Category] = CATEGORIES) -> list[Finding]:
    """Every PII value and secret in ``text``, in order, with overlaps resolved."""
    found: list[Finding] = []
    for cat in categories:
        found.extend(_DETECTORS[cat](text))
    if not found:
        return found
    # more specific category first, then the longer span
    found.sort(key=lambda f: (_PRIORITY[f.category], -(f.end - f.start), f.start))
    starts: list[int] = []  # taken spans, kept sorted by start: overlap checks are O(log n)
    taken: list[Finding] = []
    for f in found:
        k = bisect.bisect_left(starts, f.start)
        if k > 0 and taken[k - 1].end > f.start:
            continue
        if k < len(taken) and taken[k].start < f.end:
            continue
        starts.insert(k, f.start)
        taken.insert(k, f)
    return taken
