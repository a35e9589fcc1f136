"""What ./run_all.sh shows while a notebook runs (a heartbeat naming the cell, the bars of the models it trains) and the
peak memory a notebook's provenance records (its training workers included)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pandas as pd

from acmtl.companion import progress
from acmtl.companion.progress import Cell, PeakMemory, Watch, heartbeat_line, running_cell, training_output
from acmtl.companion.publish import timings


def _notebook(statuses: list[str | None], started: datetime | None = None) -> dict:
    cells = []
    for i, status in enumerate(statuses):
        marks = {"status": status} if status else {}
        if status == "running" and started:
            marks["start_time"] = started.isoformat()
        cells.append({"cell_type": "code", "metadata": {"papermill": marks},
                      "source": ["\n", f"results = step_{i}(profile)  # a comment\n", "more()\n"]})
    return {"cells": cells}


def test_the_running_cell_is_the_one_papermill_marks_running():
    started = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    notebook = _notebook(["completed", "completed", "running", "pending"], started)
    assert running_cell(notebook) == Cell(2, 4, "results = step_2(profile)  # a comment", started)
    assert running_cell(_notebook(["completed", "completed"])) is None


def test_a_heartbeat_names_the_notebook_the_cell_and_how_long_it_ran():
    started = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    cell = Cell(6, 19, "results = run_benchmark(device, quick=quick, threads=threads, log=print)", started)
    line = heartbeat_line("02_speed_params", cell, 754, 3 * 2**30, now=started + timedelta(seconds=185), width=40)
    assert line == ("run_all: 02_speed_params: cell 7 of 19 (results = run_benchmark(device, quick...) running "
                    "for 3 min 05 s; 12 min 34 s in all, 3.0 GiB in memory")
    assert "starting its kernel" in heartbeat_line("00_x", None, 5, 0)


def test_training_output_goes_to_the_progress_file_only_when_one_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    with training_output() as bars:
        print("to the notebook")
    assert bars is False and capsys.readouterr().out == "to the notebook\n"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(tmp_path / "bars.log"))
    with training_output() as bars:
        print("epoch 1: loss 0.5")
        print("\repoch 2/50:  40%", end="", file=sys.stderr)
    assert bars is True and capsys.readouterr() == ("", "")
    assert (tmp_path / "bars.log").read_bytes() == b"epoch 1: loss 0.5\n\repoch 2/50:  40%"


def test_the_watch_beats_copies_the_kernels_bars_and_measures_its_processes(tmp_path, monkeypatch):
    """A stand-in kernel (a child process) writes bars to the progress file and holds 200 MiB while the executed
    notebook says cell 3 runs: the heartbeat names cell 3, the bars reach ``err``, the peak counts the child."""
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    executed = tmp_path / "out.ipynb"
    executed.write_text(json.dumps(_notebook(["completed", "completed", "running"], datetime.now(UTC))))
    out, err = io.StringIO(), io.StringIO()
    kernel = ("import os, time; held = bytearray(200 * 2**20); held[::4096] = b'x' * len(held[::4096]); "
              "f = open(os.environ['ACMTL_PROGRESS_FILE'], 'a'); f.write('\\repoch 1/2: 50%'); f.flush(); "
              "time.sleep(1.5); f.write('\\repoch 1/2: 100%\\n'); f.flush(); time.sleep(0.5)")
    with Watch("03_ablation", executed, interval=0.5, out=out, err=err) as watch:
        subprocess.run([sys.executable, "-c", kernel], check=True, timeout=60)
    *beats, last = [line for line in out.getvalue().splitlines() if line]  # a beat after an open bar starts a line
    assert beats and all(b.startswith("run_all: 03_ablation: cell 3 of 3 (results = step_2(profile)") for b in beats)
    assert last == f"run_all: 03_ablation: its kernel and their processes peaked at {watch.peak / 2**30:.1f} GiB"
    assert "\repoch 1/2: 50%" in err.getvalue() and err.getvalue().endswith("100%\n")
    assert watch.peak >= 200 * 2**20
    assert progress.PROGRESS_ENV not in os.environ  # the kernel's setting does not outlive its run


def test_the_peak_counts_the_children_a_process_starts():
    sampler = PeakMemory(interval=0.1)
    own = sampler.sample()
    child = subprocess.Popen([sys.executable, "-c", "import time; held = bytearray(300 * 2**20); "
                              "held[::4096] = b'x' * len(held[::4096]); time.sleep(2)"])
    try:
        time.sleep(1.5)
    finally:
        child.wait(timeout=60)
    assert sampler.stop() >= own + 250 * 2**20


def test_the_notebook_times_carry_their_peak_memory(tmp_path):
    record = {"profile": "default", "wall_seconds": 300.0, "timestamp": "2026-01-01T00:00:00+00:00",
              "device": {"cpu": "a CPU", "cpu_count": 2}, "resources": {"peak_memory_mib": 3481.6}}
    for table, rec in (("figure7_attention_scores", record), ("figure10_error_categories",
                                                              {k: v for k, v in record.items() if k != "resources"})):
        pd.DataFrame({"x": [1]}).to_csv(tmp_path / f"{table}.csv", index=False)
        (tmp_path / f"{table}.provenance.json").write_text(json.dumps(rec))
    times = timings(tmp_path).set_index("notebook")
    assert times.loc["04_attention", "peak_memory_mib"] == 3481.6
    assert times.loc["04_attention", "peak_memory"] == "3.4 GiB"
    assert pd.isna(times.loc["07_error_analysis", "peak_memory"])  # recorded before the measure existed
