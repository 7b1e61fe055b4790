"""Simulation throughput: accepted events per second per core, per sample, and the share of
time spent outside Pythia (filter + detector model + writing). Target: that share <= 20 %.

Runs one task per sample in this process (one core), so the figures are per core; the rate
is taken over the process's CPU time (robust to other jobs on the machine) and over the wall
clock. QCD runs twice with the same seed: the plain method (every hard event decayed once) and
re-decays (simulation.redecay: each hard event's b/c hadrons decayed K times, the first
passing copy kept); their ratio is the speed-up. The two QCD samples are then compared
feature by feature: a two-sample Kolmogorov-Smirnov test on each of the 14 high-level features
of the selected events (PHYSICS.md, computed by tests/physics_reference.py, without Spark).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.physics_reference
from measure import peak_rss_mib  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=400, help="accepted events per sample")
    parser.add_argument(
        "--qcd-events", type=int, default=None, help="accepted QCD events per method (--events)"
    )
    parser.add_argument("--samples", nargs="+", default=["ttbar", "wjets", "qcd"])
    parser.add_argument("--redecays", type=int, default=None, help="K (default: the sample's)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    from simulation.redecay import DEFAULT_REDECAYS
    from simulation.tasks import TaskResult, generate, plan

    out = Path(tempfile.mkdtemp(prefix="topolake-bench-sim-"))
    print(f"simulation benchmark, {time.strftime('%Y-%m-%d')}, one core per sample")
    print(
        f"{'sample':8} {'K':>3} {'events':>6} {'hard ev.':>8} {'copies':>7} {'passed':>6} "
        f"{'acc./cpu-s':>10} {'acc./s':>7} {'pythia s':>8} {'redecay s':>9} {'filter s':>8} "
        f"{'detector s':>10} {'write s':>7} {'outside':>7}"
    )
    qcd: dict[int, tuple[TaskResult, float]] = {}
    for sample in args.samples:
        events = (args.qcd_events or args.events) if sample == "qcd" else args.events
        methods = [1, args.redecays or DEFAULT_REDECAYS[sample]] if sample == "qcd" else [None]
        for redecays in methods:
            directory = out / f"k{redecays}" if redecays else out
            (task,) = plan(sample, events, directory, args.seed, files=1, redecays=redecays)
            started, cpu = time.perf_counter(), time.process_time()
            result = generate(task)
            total, cpu = time.perf_counter() - started, time.process_time() - cpu
            outside = result.filter_s + result.detector_s + result.write_s
            print(
                f"{sample:8} {result.redecays:3d} {result.events:6d} {result.generated:8d} "
                f"{result.decayed:7d} {result.decays_passed:6d} {result.events / cpu:10.2f} "
                f"{result.events / total:7.2f} {result.pythia_s:8.1f} {result.redecay_s:9.2f} "
                f"{result.filter_s:8.2f} {result.detector_s:10.2f} {result.write_s:7.2f} "
                f"{outside / total:7.1%}",
                flush=True,
            )
            if sample == "qcd":
                qcd[result.redecays] = (result, cpu)
    if len(qcd) == 2:
        compare_qcd(qcd, args.seed)
    print(f"peak memory: {peak_rss_mib():,.0f} MiB")


def compare_qcd(qcd, seed: int) -> None:
    from scipy.stats import ks_2samp

    from tests.physics_reference import event_features, read_events
    from topolake.core.vocabulary import HLF_FEATURES

    (plain, plain_cpu), (fast, fast_cpu) = (qcd[k] for k in sorted(qcd))
    ratio = (fast.events / fast_cpu) / (plain.events / plain_cpu)
    print(
        f"\nQCD, re-decays K={fast.redecays} against plain: {fast.events / fast_cpu:.2f} against "
        f"{plain.events / plain_cpu:.2f} accepted events per CPU-second: {ratio:.2f}x"
    )
    print(
        f"  plain: {plain.passed} of {plain.generated} events passed the filter "
        f"({plain.passed / plain.generated:.2%})"
    )
    print(
        f"  re-decays: {fast.decays_passed} of {fast.decayed} copies passed "
        f"({fast.decays_passed / fast.decayed:.2%}), from {fast.passed} of {fast.generated} hard "
        f"events ({fast.passed / fast.generated:.1%}); the policy dropped "
        f"{fast.decays_passed - fast.passed} passing copies "
        f"({1 - fast.passed / fast.decays_passed:.0%}): keeping every passing copy would give "
        f"{fast.decays_passed / fast.passed * ratio:.1f}x, correlated"
    )
    share = python_loop_share(fast, fast_cpu, seed)
    print(
        f"  re-decaying (C++ decays, copies, exports, the Python loop over copies): "
        f"{fast.redecay_s:.1f} s of {fast.pythia_s:.1f} s in Pythia; the Python calls alone "
        f"{share:.1%} of the run's CPU time"
    )

    features = {}
    for name, result in (("plain", plain), ("re-decays", fast)):
        rows = [f[0] for e in read_events(result.path) if (f := event_features(e)) is not None]
        features[name] = rows
    a, b = features["plain"], features["re-decays"]
    print(f"\nHLF of the selected events (PHYSICS.md): plain {len(a)}, re-decays {len(b)}")
    print(f"{'feature':12} {'mean plain':>11} {'mean re-dec.':>12} {'KS D':>6} {'p-value':>8}")
    low = 0
    for i, name in enumerate(HLF_FEATURES):
        x, y = [r[i] for r in a], [r[i] for r in b]
        test = ks_2samp(x, y)
        low += test.pvalue < 0.05
        print(
            f"{name:12} {sum(x) / len(x):11.3f} {sum(y) / len(y):12.3f} "
            f"{test.statistic:6.3f} {test.pvalue:8.3f}"
        )
    print(
        f"{low} of {len(HLF_FEATURES)} features with p < 0.05 (about "
        f"{0.05 * len(HLF_FEATURES):.1f} expected by chance; discrete features make the test "
        f"conservative); at these sizes a difference of the CDFs of about "
        f"{1.36 * ((len(a) + len(b)) / (len(a) * len(b))) ** 0.5:.2f} is needed for p < 0.05"
    )


def python_loop_share(fast, fast_cpu: float, seed: int) -> float:
    """Per copy, the cost of the loop's Python calls, measured on a record with nothing to decay
    (two photons, as a hard event has two to four b/c hadrons), times the copies the run made,
    over the run's CPU time."""
    import pythia8mc

    from simulation.generator import LeptonFilter
    from simulation.redecay import RedecayedEvents

    source = RedecayedEvents("qcd", seed, LeptonFilter(), fast.redecays)
    photon = pythia8mc.Particle(22, 1, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 10.0, 10.0)
    record = source.exporter.event
    repeats = max(1, 20_000 // fast.redecays)
    started = time.process_time()
    for _ in range(repeats):
        record.reset()
        source.decay_copies([photon, photon], record)
    per_copy = (time.process_time() - started) / (repeats * fast.redecays)
    return per_copy * fast.decayed / fast_cpu


if __name__ == "__main__":
    main()
