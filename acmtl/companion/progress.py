"""What a running notebook shows outside itself: ``./run_all.sh``'s heartbeat (which notebook, which cell, for how
long, in how much memory), the bars of the models it trains, and the peak memory its provenance records.

* Heartbeat: :class:`Watch`, around the papermill run of :func:`acmtl.companion.publish.execute`, reads the executed
  notebook papermill saves at every cell start (the running cell's ``papermill.status``) and prints one line every
  :data:`HEARTBEAT_SECONDS`.
* Training bars: a notebook keeps only one line per model trained in its output (a bar's every redraw would stay in
  it); under :class:`Watch` the kernel and its training workers write their tqdm bars and epoch lines to the file
  named by ``$ACMTL_PROGRESS_FILE`` instead (:func:`training_output`), which the watch copies to the terminal.
* Peak memory: :class:`PeakMemory` samples the resident memory of a process and its descendants (a notebook's
  training workers are its children); a notebook kernel runs one from its first cell (:func:`watch_memory`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import json
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple, TextIO

import psutil  # installed with ipykernel, a dependency (requirements.lock)

PROGRESS_ENV = "ACMTL_PROGRESS_FILE"
HEARTBEAT_SECONDS = 60.0


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of ``process`` and every descendant (one that ends while we look counts as nothing)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += member.memory_info().rss
    return total


class PeakMemory:
    """The largest :func:`tree_rss` of ``pid``'s process tree seen, sampled every ``interval`` seconds by a daemon
    thread (short spikes between samples are missed: :func:`peak_memory_mib` adds the kernel's exact own peak)."""

    def __init__(self, pid: int | None = None, interval: float = 0.5, *, descendants_only: bool = False) -> None:
        self.process, self.interval, self.descendants_only = psutil.Process(pid), interval, descendants_only
        self.peak = self.current = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="acmtl-peak-memory", daemon=True)
        self._thread.start()

    def sample(self) -> int:
        self.current = tree_rss(self.process) - (self.process.memory_info().rss if self.descendants_only else 0)
        self.peak = max(self.peak, self.current)
        return self.current

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.sample()
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


_KERNEL: PeakMemory | None = None


def watch_memory() -> PeakMemory:
    """This process's tree sampler, started on first call (a notebook's first cell calls it)."""
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = PeakMemory(interval=1.0)  # a notebook runs for minutes; 1 s keeps the benchmark's CPU undisturbed
    return _KERNEL


def peak_memory_mib() -> float:
    """The peak resident memory of this process and its descendants so far, in MiB: the exact peak of this process
    (``ru_maxrss``) or the largest sampled sum of the tree (:func:`watch_memory`), whichever is larger."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return round(max(own, _KERNEL.peak if _KERNEL else 0) / 2**20, 1)


@contextlib.contextmanager
def training_output() -> Iterator[bool]:
    """Inside: this process's stdout and stderr go to ``$ACMTL_PROGRESS_FILE`` (True) when it is set (a notebook run
    by ``./run_all.sh``), so that a model's bars reach the terminal and not the notebook; else nothing changes
    (False)."""
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        yield False
        return
    with open(path, "a", encoding="utf-8", buffering=1) as stream, \
            contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        yield True


def echo(line: str) -> None:
    """Write ``line`` to the terminal of a notebook run by ``./run_all.sh`` too (``$ACMTL_PROGRESS_FILE``, which its
    watch copies there), for training that shows its epochs in the notebook and not as bars; else nothing."""
    with training_output() as to_terminal:
        if to_terminal:
            print(line)


# -- the heartbeat ------------------------------------------------------------------------------------------------


class Cell(NamedTuple):
    """The cell a notebook runs: its index, the notebook's number of cells, its first line, when it started."""

    index: int
    cells: int
    source: str
    started: datetime | None


def running_cell(notebook: dict) -> Cell | None:
    """The cell papermill marks running in an executed notebook's JSON (its start time is papermill's, in UTC), or
    None when none runs."""
    cells = notebook.get("cells", [])
    for index, cell in enumerate(cells):
        marks = cell.get("metadata", {}).get("papermill", {})
        if marks.get("status") == "running":
            lines = [line.strip() for line in "".join(cell.get("source", "")).splitlines() if line.strip()]
            return Cell(index, len(cells), lines[0] if lines else "", _when(marks.get("start_time")))
    return None


def _when(stamp: object) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return None


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def heartbeat_line(name: str, cell: Cell | None, seconds: float, memory: int, now: datetime | None = None,
                   width: int = 60) -> str:
    """One line: the notebook, its running cell (number of total, first line cut to ``width``, how long it has run
    at ``now``, default the current time), how long the notebook has run, the memory of its kernel and processes."""
    where = "starting its kernel"
    if cell is not None:
        source = cell.source if len(cell.source) <= width else cell.source[: width - 3] + "..."
        where = f"cell {cell.index + 1} of {cell.cells} ({source})"
        if cell.started is not None:
            where += f" running for {_clock(((now or datetime.now(UTC)) - cell.started).total_seconds())}"
    return f"run_all: {name}: {where}; {_clock(seconds)} in all, {memory / 2**30:.1f} GiB in memory"


class Watch:
    """Around a notebook's papermill run: sets ``$ACMTL_PROGRESS_FILE`` for its kernel (which inherits this process's
    environment), copies what the kernel writes there to ``err`` as it comes, prints :func:`heartbeat_line` to ``out``
    every ``interval`` seconds, and measures the peak memory of the kernel's process tree (``peak``, bytes), which a
    last line gives, whether the notebook failed or not."""

    def __init__(self, name: str, executed: Path, interval: float = HEARTBEAT_SECONDS, *,
                 out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.name, self.executed, self.interval = name, Path(executed), interval
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> Watch:
        handle, self._file = tempfile.mkstemp(prefix="acmtl-progress-", suffix=".log")
        os.close(handle)
        self._previous = os.environ.get(PROGRESS_ENV)
        os.environ[PROGRESS_ENV] = self._file
        self._memory = PeakMemory(descendants_only=True)  # the kernel and its workers, not this process
        self._thread = threading.Thread(target=self._run, name="acmtl-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = self._memory.stop()
        self.out.write(f"run_all: {self.name}: its kernel and their processes peaked at {self.peak / 2**30:.1f} GiB\n")
        self.out.flush()
        if self._previous is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = self._previous
        Path(self._file).unlink(missing_ok=True)

    def _cell(self) -> Cell | None:
        try:
            return running_cell(json.loads(self.executed.read_text(encoding="utf-8")))
        except (OSError, ValueError):  # not written yet, or caught mid-write: the next beat reads it
            return None

    def _run(self) -> None:
        started = beat = time.monotonic()
        line_open = False
        with open(self._file, encoding="utf-8", errors="replace", newline="") as bars:
            while True:
                stopping = self._stop.wait(0.5)
                text = bars.read()
                if text:
                    self.err.write(text)
                    self.err.flush()
                    line_open = not text.endswith("\n")
                if stopping:
                    break
                now = time.monotonic()
                if now - beat >= self.interval:
                    beat = now
                    self.out.write(("\n" if line_open else "") + heartbeat_line(
                        self.name, self._cell(), now - started, self._memory.current) + "\n")
                    self.out.flush()
                    line_open = False
        if line_open:
            self.err.write("\n")


def release_memory() -> None:
    """Free what Python still holds in reference cycles and hand glibc's free heap pages back to the system: a
    notebook's kernel keeps its peak otherwise, and its training workers' memory comes on top of it."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
