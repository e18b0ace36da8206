"""Run every benchmark once, one after another (never in parallel: they share 2 cores), printing their figures.

Usage: python bench/run_all.py [--only NAME]   (NAME matches a script, e.g. --only knn)
Figures go to stdout; bench/README.md records a run with the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
# Each with arguments sized to finish in a few minutes on a 2-core machine.
BENCHES = [
    ("bench_synth.py", []),
    ("bench_ingest.py", []),
    ("bench_model.py", []),
    ("bench_embed.py", []),
    ("bench_runtime.py", ["--only", "towers,text,pipeline"]),
    ("bench_knn.py", []),
    ("bench_eval.py", []),
    ("bench_train.py", ["--skip-epoch"]),
    ("bench_overheads.py", []),
    ("bench_scale.py", []),
    ("bench_dashboard.py", []),
]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    flags = Path("/proc/cpuinfo").read_text()
    extras = [f for f in ("avx512f", "amx_bf16") if f in flags]
    return f"{cpu}, {os.cpu_count()} cores, {' '.join(extras) or 'no AVX-512/AMX'}, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run only the benchmarks whose file name contains this")
    args = parser.parse_args()
    print(f"# machine: {machine()}")
    failed = []
    for script, extra in BENCHES:
        if args.only not in script:
            continue
        print(f"\n## {script} {' '.join(extra)}", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / script), *extra])
        print(f"({script}: {time.perf_counter() - started:.0f} s, exit {code})", flush=True)
        if code:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
