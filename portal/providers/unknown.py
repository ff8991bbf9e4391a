"""What a parser does with a part of a reply it has no rule for: keep it, as the vendor sent
it, on ``Response.provider_details``, never in ``text``, and bounded in number for streams.

A vendor's new content type or stream event then stays visible to the caller instead of
being dropped or breaking the parse.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_UNKNOWN_EVENTS", "keep_unknown"]

#: a stream keeps at most this many unknown events on its final reply (see
#: `StreamParser.keep_unknown_event`); later ones are only counted, so an endless run of
#: unknown events cannot grow memory without bound
MAX_UNKNOWN_EVENTS = 100


def keep_unknown(details: dict[str, Any], item: Any, key: str = "unknown_content") -> None:
    """Keep a content block / part / output item that portal has no rule for, as the vendor
    sent it, in ``details[key]`` (reply order): a vendor's new content type stays visible in
    ``Response.provider_details`` instead of being dropped, and never enters ``text``."""
    kept = details.get(key)
    if kept is None:
        details[key] = [item]
    else:
        kept.append(item)
