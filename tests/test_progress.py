"""What the search shows while it runs: a live display on terminals, log lines elsewhere."""

from __future__ import annotations

import io

from rich.console import Console

from nas.progress import LiveReporter, LogReporter, SearchReporter


def drive(reporter: SearchReporter) -> None:
    reporter.phase_started("supernet", 2)
    reporter.phase_step(5, 10)
    reporter.phase_epoch(1, 2, "loss 1.2500, val accuracy biggest 0.5000 smallest 0.2500")
    reporter.phase_epoch(2, 2, "loss 0.7500, val accuracy biggest 0.9000 smallest 0.8000")
    reporter.phase_finished("biggest child val accuracy 0.9000")
    reporter.start(study="demo", done=1, total=3, best=lambda: "0.5000 (trial 0)")
    reporter.trial_started(1, "normal[b0=identity(0)+identity(1)]", 2)
    reporter.step(1, 3, 6)
    reporter.epoch(1, 1, 2, 0.75)
    reporter.trial_finished(1, "complete: accuracy=0.75", done=2, best=lambda: "0.7500 (trial 1)")
    reporter.close()


def test_log_reporter_writes_one_line_per_event() -> None:
    stream = io.StringIO()
    drive(LogReporter(stream))
    text = stream.getvalue()
    assert "supernet epoch 2/2: loss 0.7500, val accuracy biggest 0.9000 smallest 0.8000" in text
    assert "supernet ready (biggest child val accuracy 0.9000)" in text
    assert "study demo: 1/3 trials finished, best 0.5000 (trial 0)" in text
    assert "trial 1 epoch 1/2: val accuracy 0.7500" in text
    assert "trial 1 complete: accuracy=0.75; 2/3 done, best 0.7500 (trial 1), ETA" in text
    assert "step" not in text  # per-step progress is for the live display only


def test_live_reporter_renders_bars_and_keeps_brackets() -> None:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=160, color_system=None)
    drive(LiveReporter(console))
    text = stream.getvalue()
    assert "supernet epoch 1/2: loss 1.2500" in text
    assert "normal[b0=identity(0)+identity(1)]" in text  # not eaten as rich markup
    assert "trial 1 complete: accuracy=0.75" in text
    assert "2/3" in text and "best 0.7500 (trial 1)" in text


def test_silent_reporter_never_computes_the_best_so_far() -> None:
    from nas.progress import SilentReporter

    def best() -> str:
        raise AssertionError("computed for nobody")

    SilentReporter().start(study="demo", done=0, total=3, best=best)
    SilentReporter().trial_finished(0, "complete", done=1, best=best)
