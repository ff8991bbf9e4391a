"""A JSONL ledger on a disk that fills up part-way through writes keeps exactly one row per
record: a failed append is cut back (or, where it cannot be, the whole lines already written
are skipped on the retry)."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path
from typing import Any

import pytest

from portal.metering import ledger as ledger_mod
from portal.metering.ledger import Ledger, LedgerRecord, read_records


class FullDisk:
    """``os.write`` that, on a third of the calls (fixed seed), writes only part of the
    buffer and then fails the next call with ENOSPC, like a disk that fills up mid-append."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fail_next = False
        self.partial = 0
        self.real = os.write

    def __call__(self, fd: int, data: Any) -> int:
        if self.fail_next:
            self.fail_next = False
            raise OSError(errno.ENOSPC, "No space left on device")
        if len(data) > 1 and self.rng.random() < 1 / 3:
            self.fail_next = True
            self.partial += 1
            return self.real(fd, bytes(data[: self.rng.randrange(1, len(data))]))
        return self.real(fd, data)


@pytest.mark.parametrize("truncate_works", [True, False], ids=["cut-back", "skip-written"])
def test_a_full_disk_mid_append_never_duplicates_a_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, truncate_works: bool
) -> None:
    path = tmp_path / "ledger.jsonl"
    disk = FullDisk(seed=17)
    monkeypatch.setattr(ledger_mod.os, "write", disk)
    if not truncate_works:

        def no_truncate(fd: int, length: int) -> None:
            raise OSError(errno.EIO, "cannot truncate")

        monkeypatch.setattr(ledger_mod.os, "ftruncate", no_truncate)
    led = Ledger([f"jsonl:///{path}"], batch_size=7, retry_initial_s=0.001, retry_max_s=0.01)
    for i in range(400):
        led.record(LedgerRecord(call_id=f"c{i:04d}", kind="call", target="p:m"))
    assert led.flush(timeout=30)
    led.close()
    ids = [rec.call_id for rec in read_records(f"jsonl:///{path}")]
    assert len(ids) == 400, f"{len(ids)} rows for 400 records"
    assert sorted(ids) == [f"c{i:04d}" for i in range(400)]
    assert disk.partial >= 20  # the disk really did fill up mid-append, many times


def test_a_line_cut_just_before_its_newline_is_one_row_not_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up one byte short of the end of a line, and the file cannot be cut
    back: the next append ends that line, which then reads back as a row, so the retry must
    not write it again."""
    path = tmp_path / "ledger.jsonl"
    real = os.write
    state = {"cut": False, "fail": False}

    def write(fd: int, data: Any) -> int:
        if state["fail"]:
            state["fail"] = False
            raise OSError(errno.ENOSPC, "No space left on device")
        if not state["cut"] and len(data) > 1:
            state["cut"] = state["fail"] = True
            first = bytes(data).index(b"\n")
            return real(fd, bytes(data[:first]))  # the first line, all but its newline
        return real(fd, data)

    def no_truncate(fd: int, length: int) -> None:
        raise OSError(errno.EIO, "cannot truncate")

    monkeypatch.setattr(ledger_mod.os, "write", write)
    monkeypatch.setattr(ledger_mod.os, "ftruncate", no_truncate)
    led = Ledger([f"jsonl:///{path}"], batch_size=3, retry_initial_s=0.001, retry_max_s=0.01)
    for i in range(3):
        led.record(LedgerRecord(call_id=f"c{i}", kind="call", target="p:m"))
    assert led.flush(timeout=10)
    led.close()
    ids = [rec.call_id for rec in read_records(f"jsonl:///{path}")]
    assert sorted(ids) == ["c0", "c1", "c2"]
