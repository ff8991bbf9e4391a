"""Live progress of a run: a rich Live line on a terminal, plain periodic lines otherwise
(CI logs, pipes), nothing with ``quiet``."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from portal.stress.engine import Progress

__all__ = ["ProgressDisplay", "progress_text"]


def progress_text(p: Progress, prefix: str = "") -> str:
    p95 = "-" if p.p95_ms is None else f"{p.p95_ms:,.0f} ms"
    return (
        f"{prefix}{p.elapsed_s:5.1f}s/{p.duration_s:g}s  sent {p.sent}  in flight {p.in_flight}  "
        f"ok {p.ok}  errors {p.errors}  p95 (last 5 s) {p95}"
    )


class ProgressDisplay:
    """Use as a context manager; pass `update` as the engine's ``on_progress``."""

    def __init__(
        self, quiet: bool = False, out: TextIO | None = None, every_s: float = 5.0, prefix: str = ""
    ) -> None:
        self.out = out or sys.stderr
        self.quiet = quiet
        self.every_s = every_s
        self.prefix = prefix
        self._live: Any = None
        self._last = -1e9

    def __enter__(self) -> ProgressDisplay:
        if self.quiet or not self.out.isatty():
            return self
        try:
            from rich.console import Console
            from rich.live import Live
        except ImportError:
            return self
        self._live = Live("", console=Console(file=self.out), refresh_per_second=4, transient=False)
        self._live.__enter__()
        return self

    def update(self, p: Progress) -> None:
        if self.quiet:
            return
        text = progress_text(p, self.prefix)
        if self._live is not None:
            self._live.update(text)
            return
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            print(text, file=self.out, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None
