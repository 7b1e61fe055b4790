"""Progress a person can follow in a log: plain lines at an interval with count, rate and ETA,
and a last line; the run log gets them whatever the console is, without escape codes."""

from __future__ import annotations

import re
import time

import pytest

from topolake.app import console as console_module
from topolake.app.console import ConsoleHooks, PlainProgress, progress_interval
from topolake.core.settings import ConfigurationError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_plain_progress_writes_one_line_per_interval_with_count_rate_and_eta_then_a_last():
    clock, lines = Clock(), []
    progress = PlainProgress("simulating 300 qcd events", 300, lines.append, 30, clock=clock)

    clock.now += 10
    progress.advance(20)
    assert lines == []  # not due yet
    clock.now += 20
    progress.advance(10)  # 30 events in 30 s
    clock.now += 15
    progress.advance(15)  # due again only 30 s after the last line
    clock.now += 15
    progress.tick()  # the callback is quiet: the ticker writes it
    clock.now += 5
    progress.tick()
    assert lines == [
        "simulating 300 qcd events: 30/300 (10%) in 30 s, 1.0/s, ETA 4 min 30 s",
        "simulating 300 qcd events: 45/300 (15%) in 1 min 00 s, 45.0/min, ETA 5 min 40 s",
    ]

    clock.now += 35
    progress.advance(0)
    assert (
        lines[-1]
        == "simulating 300 qcd events: 45/300 (15%) in 1 min 40 s, 27.0/min, ETA 9 min 27 s"
    )
    progress.complete()
    progress.close()
    progress.close()  # once
    progress.tick()  # nothing after the last line
    assert lines[3:] == ["simulating 300 qcd events: 300/300 done in 1 min 40 s, 3.0/s"]


def test_nothing_counted_yet_says_so_and_a_stage_without_a_count_tells_its_time():
    clock, lines = Clock(), []
    tasks = PlainProgress("landing 3 files", None, lines.append, 30, unit="tasks", clock=clock)
    clock.now += 30
    tasks.tick()
    tasks.update(2, 8)
    clock.now += 30
    tasks.update(4, 8)
    clock.now += 60
    tasks.close(stopped=True)
    assert lines == [
        "landing 3 files: 30 s so far",
        "landing 3 files: 4/8 tasks (50%) in 1 min 00 s, 4.0 tasks/min, ETA 1 min 00 s",
        "landing 3 files: stopped after 2 min 00 s at 4/8 tasks",
    ]
    waited = PlainProgress("preparing the training extract", None, lines.append, 30, clock=clock)
    clock.now += 3700
    waited.tick()
    waited.close()
    assert lines[3:] == [
        "preparing the training extract: 1 h 01 min so far",
        "preparing the training extract: done in 1 h 01 min",
    ]
    slow = PlainProgress("tune hlf", 4, lines.append, 30, clock=clock)
    clock.now += 150
    slow.advance(1)
    assert lines[-1] == "tune hlf: 1/4 (25%) in 2 min 30 s, 2 min 30 s each, ETA 7 min 30 s"


def test_the_hooks_write_plain_progress_to_a_piped_console_and_the_run_log(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.setattr(console_module.console, "is_interactive", False)  # as in a pipe
    hooks = ConsoleHooks(interval=0.1)
    with hooks.run_log(tmp_path / "run.log") as log:
        hooks.stage(1, 7, "simulate")
        with hooks.counter("simulating 30 ttbar events", 30) as advance:
            advance(10)
            time.sleep(0.35)  # the ticker writes lines meanwhile
            advance(10)
        hooks.line("ttbar: 30 events generated", "green")
        hooks.table(["sample", "events"], [("ttbar", 30)])
        with pytest.raises(RuntimeError), hooks.waiting("preparing the training extract"):
            raise RuntimeError("failed")
        hooks.error("stage train failed: no data")
    hooks.line("after the run: not in its log")

    console = capsys.readouterr()
    written = log.read_text()
    for output in (console.err, written):
        assert "\x1b[" not in output
        assert "stage 1/7: simulate" in output
        assert re.search(
            r"^simulating 30 ttbar events: 10/30 \(33%\) in 0 s, [\d.]+/s, ETA \d+ s$",
            output,
            re.MULTILINE,
        ), output
        assert re.search(r"^simulating 30 ttbar events: 30/30 done in 0 s", output, re.MULTILINE)
        assert "preparing the training extract: stopped after 0 s" in output
        assert "error: stage train failed: no data" in output
    assert "│ ttbar  │ 30     │" in console.out and "│ ttbar  │ 30     │" in written
    assert "after the run" in console.err and "after the run" not in written


def test_the_interval_comes_from_the_environment_and_a_bad_one_is_refused(monkeypatch):
    monkeypatch.delenv("TOPOLAKE_PROGRESS_INTERVAL", raising=False)
    assert progress_interval() == 30
    monkeypatch.setenv("TOPOLAKE_PROGRESS_INTERVAL", "1.5")
    assert progress_interval() == 1.5
    for bad in ("0", "-1", "soon", "inf"):
        monkeypatch.setenv("TOPOLAKE_PROGRESS_INTERVAL", bad)
        with pytest.raises(ConfigurationError, match="TOPOLAKE_PROGRESS_INTERVAL"):
            progress_interval()
