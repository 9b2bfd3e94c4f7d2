"""How fast this machine runs Python, printed at the top of each benchmark.

Absolute figures from different machines do not compare (one session's machine ran the
same code two to three times slower than another's: pyenv builds CPython without PGO or
LTO), so every run says what it ran on. Ratios against a baseline measured in the same
run are what the targets compare.
"""

from __future__ import annotations

import os
import platform
import sys
import timeit


def machine_line() -> str:
    loop_ms = min(timeit.repeat("sum(range(10**6))", number=1, repeat=5)) * 1000
    load = os.getloadavg()[0]
    return (
        f"machine: Python {platform.python_version()} ({sys.executable}), "
        f"sum(range(10**6)) {loop_ms:.1f} ms, {os.cpu_count()} cores, load average {load:.2f}"
    )
