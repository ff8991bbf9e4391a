"""`portal gameday`: a load test while one vendor breaks on schedule.

    portal gameday --config portal.toml --feature support.answer --scenario outage \\
        --target acme --at 20s --for 30s --rps 50 --duration 90s
    portal gameday --config portal.toml --all          # every [gamedays.NAME] scenario

The named provider's transport is wrapped in `portal.stress.faults.FaultTransport`, which
breaks it from ``--at`` for ``--for``: ``outage`` (connection refused, or ``--status 503``),
``slow`` (added lognormal latency), ``throttle`` (429 with Retry-After), ``flaky`` (a share
of 5xx), ``brownout`` (everything slow, a share failing), ``hang`` (accepted, never
answered), ``trickle`` (replies one byte every ``interval_ms``) or ``slow_first_token``
(a lognormal wait before the first token). Everything else is the real
client and router on the production config, with routing state kept in memory so a game
day never trips the fleet's shared breakers.

What it reports: what users saw during the fault (errors, p50/p95/p99), how long until
traffic moved off the target, when its breaker opened, how long after the fault ended
traffic came back, the cost per request during the fault against the no-fault parts, the
breaker and canary events, and pass/fail: exit 0 when every check passes, 3 when one
fails, 2 on a usage or config error.

A ``[gamedays.NAME]`` table::

    [gamedays.primary-down]
    feature = "support.answer"
    scenario = "outage"            # outage | slow | throttle | flaky | brownout | hang |
                                   # trickle | slow_first_token
    target = "acme"                # a provider, or provider:model (its provider is faulted)
    at = "20s"
    for = "30s"
    rps = 50
    duration = "90s"
    # optional: burst, prompts, output_tokens, stream, seed, concurrency_limit, users
    fault = { status = 503 }       # latency_ms, latency_p99_ms, rate, status, retry_after_s,
                                   # interval_ms
    expect = { max_error_rate = 0.01, max_failover_s = 2, max_recovery_s = 30 }

The package is split by job: `model` (the scenario table and its checks), `scenarios` (what
each kind injects), `run` (running one), `analysis` (what it measured) and `render` (text).
"""

from portal.stress.gameday.analysis import Observer, analyze
from portal.stress.gameday.model import (
    DEFAULT_MAX_ERROR_RATE,
    PROMPTS_FILE,
    Expectations,
    FaultParams,
    GamedayScenario,
    check_scenario,
    scenarios_from_config,
)
from portal.stress.gameday.render import render, render_suite
from portal.stress.gameday.run import GAMEDAY_SCHEMA, run_gameday
from portal.stress.gameday.scenarios import FAULT_DEFAULTS, KINDS, Kind, fault_schedule

__all__ = [
    "DEFAULT_MAX_ERROR_RATE",
    "FAULT_DEFAULTS",
    "GAMEDAY_SCHEMA",
    "KINDS",
    "PROMPTS_FILE",
    "SUITE_SCHEMA",
    "Expectations",
    "FaultParams",
    "GamedayScenario",
    "Kind",
    "Observer",
    "analyze",
    "check_scenario",
    "fault_schedule",
    "render",
    "render_suite",
    "run_gameday",
    "scenarios_from_config",
]

SUITE_SCHEMA = "portal.gameday-suite/1"
