"""Stress tools (public): synthetic load (`run_loadtest`, `LoadSpec`), game days
(`run_gameday`, `GamedayScenario`) and fault injection (`FaultTransport`, `Fault`), run
from the same config as production. Names load on first use. Docs: docs/stress.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from portal._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Fault": "portal.stress.faults",
    "FaultTransport": "portal.stress.faults",
    "GamedayScenario": "portal.stress.gameday",
    "LoadSpec": "portal.stress.engine",
    "RunResult": "portal.stress.engine",
    "run_gameday": "portal.stress.gameday",
    "run_loadtest": "portal.stress.loadtest",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)


if TYPE_CHECKING:  # explicit re-exports for type checkers and IDEs
    from portal.stress.engine import LoadSpec as LoadSpec
    from portal.stress.engine import RunResult as RunResult
    from portal.stress.faults import Fault as Fault
    from portal.stress.faults import FaultTransport as FaultTransport
    from portal.stress.gameday import GamedayScenario as GamedayScenario
    from portal.stress.gameday import run_gameday as run_gameday
    from portal.stress.loadtest import run_loadtest as run_loadtest
