"""What portal knows about one call, as the plain dict the integrations attach to the reply
they hand back (``completion.portal``, Pydantic AI's ``provider_details``, LangChain's
``response_metadata["portal"]``), so each framework's user sees the same keys."""

from __future__ import annotations

from typing import Any

from portal.contracts.responses import EmbedResponse, Response

__all__ = ["call_summary"]


def call_summary(resp: Response | EmbedResponse) -> dict[str, Any]:
    """target, arm, feature, cost_usd, latency_ms, attempts and the vendor's request id."""
    return {
        "target": resp.target,
        "arm": getattr(resp, "arm", "baseline"),
        "feature": resp.feature,
        "cost_usd": resp.cost_usd,
        "latency_ms": resp.latency_ms,
        "attempts": len(resp.attempts),
        "request_id": getattr(resp, "request_id", None),
    }
