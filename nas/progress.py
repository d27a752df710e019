"""Progress of a search: a live display on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from nas.core.interrupt import raise_if_interrupted

# The best result so far, computed only by a reporter that shows it (it reads the study).
Best = Callable[[], str]


class SearchReporter(Protocol):
    """What the search loop tells whoever watches it."""

    def start(self, *, study: str, done: int, total: int, best: Best) -> None: ...
    def trial_started(self, number: int, arch: str, epochs: int) -> None: ...
    def step(self, number: int, step: int, steps: int) -> None: ...
    def epoch(self, number: int, epoch: int, epochs: int, accuracy: float) -> None: ...
    def trial_finished(self, number: int, outcome: str, *, done: int, best: Best) -> None: ...
    # A long preparation phase of the evaluator (evaluators.base.PhaseReporter).
    def phase_started(self, name: str, total: int) -> None: ...
    def phase_step(self, step: int, steps: int) -> None: ...
    def phase_epoch(self, epoch: int, total: int, summary: str) -> None: ...
    def phase_finished(self, summary: str) -> None: ...
    def close(self) -> None: ...


class InterruptCheckingReporter:
    """Passes everything on to ``inner``, first raising ``KeyboardInterrupt`` at each
    step and epoch if Ctrl-C was pressed and its exception was lost
    (:mod:`nas.core.interrupt`): these are called throughout every phase and trial."""

    def __init__(self, inner: SearchReporter) -> None:
        self.inner = inner

    def start(self, *, study: str, done: int, total: int, best: Best) -> None:
        self.inner.start(study=study, done=done, total=total, best=best)

    def trial_started(self, number: int, arch: str, epochs: int) -> None:
        raise_if_interrupted()
        self.inner.trial_started(number, arch, epochs)

    def step(self, number: int, step: int, steps: int) -> None:
        raise_if_interrupted()
        self.inner.step(number, step, steps)

    def epoch(self, number: int, epoch: int, epochs: int, accuracy: float) -> None:
        raise_if_interrupted()
        self.inner.epoch(number, epoch, epochs, accuracy)

    def trial_finished(self, number: int, outcome: str, *, done: int, best: Best) -> None:
        self.inner.trial_finished(number, outcome, done=done, best=best)

    def phase_started(self, name: str, total: int) -> None:
        self.inner.phase_started(name, total)

    def phase_step(self, step: int, steps: int) -> None:
        raise_if_interrupted()
        self.inner.phase_step(step, steps)

    def phase_epoch(self, epoch: int, total: int, summary: str) -> None:
        raise_if_interrupted()
        self.inner.phase_epoch(epoch, total, summary)

    def phase_finished(self, summary: str) -> None:
        self.inner.phase_finished(summary)

    def close(self) -> None:
        self.inner.close()


def _format_eta(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


class SilentReporter:
    """Reports nothing; for library use, tests and benchmarks."""

    def start(self, *, study: str, done: int, total: int, best: Best) -> None:
        pass

    def trial_started(self, number: int, arch: str, epochs: int) -> None:
        pass

    def step(self, number: int, step: int, steps: int) -> None:
        pass

    def epoch(self, number: int, epoch: int, epochs: int, accuracy: float) -> None:
        pass

    def trial_finished(self, number: int, outcome: str, *, done: int, best: Best) -> None:
        pass

    def phase_started(self, name: str, total: int) -> None:
        pass

    def phase_step(self, step: int, steps: int) -> None:
        pass

    def phase_epoch(self, epoch: int, total: int, summary: str) -> None:
        pass

    def phase_finished(self, summary: str) -> None:
        pass

    def close(self) -> None:
        pass


class LogReporter:
    """One line per event; for logs, CI and pipes."""

    def __init__(self, stream: TextIO | None = None, *, name: str | None = None) -> None:
        self._stream = stream or sys.stdout
        self._tag = f"nas {name}" if name else "nas"  # tells workers' lines apart
        self._total = 0
        self._started = time.monotonic()
        self._done_at_start = 0
        self._done = 0
        self._phase = "preparation"

    def _print(self, message: str) -> None:
        print(f"[{self._tag} {time.strftime('%H:%M:%S')}] {message}", file=self._stream, flush=True)

    def _eta(self) -> str:
        finished_here = self._done - self._done_at_start
        if finished_here <= 0:
            return "?"
        per_trial = (time.monotonic() - self._started) / finished_here
        return _format_eta(per_trial * max(self._total - self._done, 0))

    def start(self, *, study: str, done: int, total: int, best: Best) -> None:
        self._total, self._done, self._done_at_start = total, done, done
        self._started = time.monotonic()
        self._print(f"study {study}: {done}/{total} trials finished, best {best()}")

    def trial_started(self, number: int, arch: str, epochs: int) -> None:
        self._print(f"trial {number} started: {arch}")

    def step(self, number: int, step: int, steps: int) -> None:
        pass  # one line per step would drown the log

    def epoch(self, number: int, epoch: int, epochs: int, accuracy: float) -> None:
        self._print(f"trial {number} epoch {epoch}/{epochs}: val accuracy {accuracy:.4f}")

    def trial_finished(self, number: int, outcome: str, *, done: int, best: Best) -> None:
        self._done = done
        self._print(
            f"trial {number} {outcome}; {done}/{self._total} done, best {best()}, ETA {self._eta()}"
        )

    def phase_started(self, name: str, total: int) -> None:
        self._phase = name
        self._print(f"{name}: {total} epochs (resumes from its checkpoint)")

    def phase_step(self, step: int, steps: int) -> None:
        pass

    def phase_epoch(self, epoch: int, total: int, summary: str) -> None:
        self._print(f"{self._phase} epoch {epoch}/{total}: {summary}")

    def phase_finished(self, summary: str) -> None:
        self._print(f"{self._phase} ready ({summary}); searching")

    def close(self) -> None:
        pass


class LiveReporter:
    """A rich progress display: trials done of total with ETA, the current trial's epoch."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console()
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=self._console,
            transient=False,
        )
        self._trials: TaskID | None = None
        self._phase, self._phase_name = TaskID(-1), ""
        self._current: TaskID | None = None
        self._epochs_done = 0
        self._last_accuracy = ""

    def start(self, *, study: str, done: int, total: int, best: Best) -> None:
        self._progress.start()
        self._trials = self._progress.add_task(
            f"[bold]{escape(study)}", total=total, completed=done, info=f"best {best()}"
        )

    def trial_started(self, number: int, arch: str, epochs: int) -> None:
        self._console.print(f"[dim]trial {number}: {escape(arch)}")
        if self._current is not None:
            self._progress.remove_task(self._current)
        self._epochs_done, self._last_accuracy = 0, ""
        self._current = self._progress.add_task(f"trial {number}", total=epochs, info="")

    def step(self, number: int, step: int, steps: int) -> None:
        # Fractional epochs keep the bar (and its ETA) moving during long epochs.
        if self._current is not None:
            self._progress.update(
                self._current,
                completed=self._epochs_done + step / steps,
                info=f"epoch {self._epochs_done + 1} step {step}/{steps}{self._last_accuracy}",
            )

    def epoch(self, number: int, epoch: int, epochs: int, accuracy: float) -> None:
        self._epochs_done, self._last_accuracy = epoch, f"  val acc {accuracy:.4f}"
        if self._current is not None:
            self._progress.update(
                self._current, completed=epoch, info=f"epoch {epoch}/{epochs}{self._last_accuracy}"
            )

    def trial_finished(self, number: int, outcome: str, *, done: int, best: Best) -> None:
        self._console.print(f"trial {number} {escape(outcome)}")
        if self._trials is not None:
            self._progress.update(self._trials, completed=done, info=f"best {best()}")

    def phase_started(self, name: str, total: int) -> None:
        self._progress.start()
        self._epochs_done, self._phase_name = 0, name
        self._phase = self._progress.add_task(escape(name), total=total, info="")

    def phase_step(self, step: int, steps: int) -> None:
        self._progress.update(
            self._phase,
            completed=self._epochs_done + step / steps,
            info=f"epoch {self._epochs_done + 1} step {step}/{steps}{self._last_accuracy}",
        )

    def phase_epoch(self, epoch: int, total: int, summary: str) -> None:
        self._epochs_done, self._last_accuracy = epoch, f"  {summary}"
        self._progress.update(self._phase, completed=epoch, info=summary)
        self._console.print(escape(f"{self._phase_name} epoch {epoch}/{total}: {summary}"))

    def phase_finished(self, summary: str) -> None:
        self._progress.remove_task(self._phase)
        self._console.print(escape(f"{self._phase_name} ready ({summary})"))
        self._last_accuracy = ""

    def close(self) -> None:
        self._progress.stop()


def create_reporter() -> SearchReporter:
    """A live display when stdout is a terminal, plain log lines otherwise."""
    console = Console()
    return LiveReporter(console) if console.is_terminal else LogReporter()
