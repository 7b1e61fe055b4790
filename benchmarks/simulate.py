"""Simulation throughput: accepted events per second per core, per sample, and the share of
time spent outside Pythia (filter + detector model + writing). Target: that share <= 20 %.

Runs one task per sample in this process (one core), so the figures are per core.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import peak_rss_mib  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=400, help="accepted events per sample")
    parser.add_argument("--samples", nargs="+", default=["ttbar", "wjets", "qcd"])
    args = parser.parse_args()

    from simulation.tasks import generate, plan

    out = Path(tempfile.mkdtemp(prefix="topolake-bench-sim-"))
    print(f"simulation benchmark, {time.strftime('%Y-%m-%d')}, one core per sample")
    print(
        f"{'sample':8} {'events':>6} {'generated':>9} {'accepted/s/core':>15} "
        f"{'pythia s':>8} {'filter s':>8} {'detector s':>10} {'write s':>7} {'outside':>7}"
    )
    for sample in args.samples:
        (task,) = plan(sample, args.events, out, seed=42, files=1)
        started = time.perf_counter()
        result = generate(task)
        total = time.perf_counter() - started
        outside = result.filter_s + result.detector_s + result.write_s
        print(
            f"{sample:8} {result.events:6d} {result.generated:9d} "
            f"{result.events / total:15.1f} {result.pythia_s:8.1f} {result.filter_s:8.2f} "
            f"{result.detector_s:10.2f} {result.write_s:7.2f} {outside / total:7.1%}"
        )
    print(f"peak memory: {peak_rss_mib():,.0f} MiB")


if __name__ == "__main__":
    main()
