"""Run the benchmarks: `make bench` (all) or `make bench BENCH_ARGS="import --rows 200000"`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = {
    "import": "import_bench.py",
    "generation": "generation_bench.py",
    "neardup": "neardup_bench.py",
    "coverage": "coverage_bench.py",
    "review": "review_bench.py",
}


def main() -> None:
    args = sys.argv[1:]
    names = [args.pop(0)] if args and args[0] in BENCHES else list(BENCHES)
    for name in names:
        print(f"== {name}", flush=True)
        subprocess.run([sys.executable, str(HERE / BENCHES[name]), *args], check=True)


if __name__ == "__main__":
    main()
