"""Synthetic data speed: 1,000 films at the default size on one core. Prints wall and CPU seconds.

Usage: python bench/bench_synth.py [--n 1000] [--size 256] [--site adult]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pedclip.data.synth import SynthConfig, synthesize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--site", default="adult")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wall, cpu = time.perf_counter(), time.process_time()
        summary = synthesize(SynthConfig(out=Path(tmp), sites=(args.site,), n=args.n, size=args.size))[0]
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"synth {args.site}: {summary.images} films at {args.size} px in {wall:.1f} s wall, {cpu:.1f} s CPU "
        f"({1000 * cpu / summary.images:.1f} ms CPU per film, {summary.images / wall:.0f} films/s wall)"
    )


if __name__ == "__main__":
    main()
