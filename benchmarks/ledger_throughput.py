"""How many records/s the ledger writes to SQLite in the background (target: >= 50,000).

Each run records N records from the caller's thread and waits for `Ledger.flush`; the rate
is N divided by the time from the first `record` to the end of the flush (i.e. durably in
the file). Prints every run and the median.

    python benchmarks/ledger_throughput.py [--records 200000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from portal.metering.ledger import Ledger, LedgerRecord, read_records


def one_run(directory: Path, n: int, i: int) -> tuple[float, float]:
    url = f"sqlite:///{directory / f'bench{i}.db'}"
    ledger = Ledger([url], batch_size=5000, flush_interval_s=0.2, max_buffer=max(n, 5000))
    rec = LedgerRecord(
        kind="attempt",
        call_id="c",
        feature="support.answer",
        target="openai:gpt-4.1-mini",
        provider="openai",
        model="gpt-4.1-mini",
        attempt=1,
        input_tokens=1200,
        output_tokens=300,
        cached_input_tokens=1000,
        cost_usd=0.0006,
        latency_ms=812.5,
        ttft_ms=201.0,
    )
    start = time.perf_counter()
    for _ in range(n):
        ledger.record(rec)
    record_s = time.perf_counter() - start
    if not ledger.flush(timeout=120):
        raise SystemExit("flush did not complete")
    total_s = time.perf_counter() - start
    ledger.close()
    assert len(read_records(url)) == n
    return n / total_s, record_s / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rates = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            rate, us = one_run(Path(tmp), args.records, i)
            rates.append(rate)
            print(f"run {i + 1}: {rate:,.0f} records/s durable; record() {us:.2f} us/call")
    print(f"median: {statistics.median(rates):,.0f} records/s (target >= 50,000)")


if __name__ == "__main__":
    main()
