"""Trivial job functions for the plain-RQ baseline of bench/throughput.py."""

from __future__ import annotations

import time


def noop() -> None:
    return None


def sleep(seconds: float) -> dict[str, float]:
    time.sleep(seconds)
    return {"slept_s": seconds}
