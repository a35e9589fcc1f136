"""``scripts/measure_lab.sh``'s record (results/lab_fresh_clone.json) and the README's lab line written from it:
the pack's size and a fresh clone's wall time are read from what ./run_all.sh printed, never typed."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

from acmtl.companion import fresh_clone, progress

ROOT = Path(__file__).resolve().parents[1]


def _run_all_lines(name: str, seconds: int, peak_gib: float, tmp_path: Path) -> str:
    """The two lines ./run_all.sh prints at the end of a notebook, made by the code that prints them."""
    done = subprocess.run(["bash", "-c", f'name={name}.ipynb; start=$(( $(date +%s) - {seconds} )); '
                           + next(line.strip() for line in (ROOT / "run_all.sh").read_text().splitlines()
                                  if 'done in $(( $(date +%s) - start )) s"' in line and "$name" in line)],
                          capture_output=True, text=True, check=True).stdout
    out = io.StringIO()
    with progress.Watch(name, tmp_path / f"{name}.ipynb", interval=3600, out=out, err=io.StringIO()) as watch:
        pass
    peak = out.getvalue().replace(f"{watch.peak / 2**30:.1f} GiB", f"{peak_gib:.1f} GiB")
    return peak + done


def _pack(path: Path, models: int) -> Path:
    manifest = json.dumps({"runs": {f"{i:016x}": "a model" for i in range(models)}}).encode()
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("acmtl-pack.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        info = tarfile.TarInfo("weights")
        info.size = 3 * 2**20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    return path


def _measured(tmp_path: Path, *, trained: list[str], changed: str) -> Path:
    logs, results = tmp_path / "logs", tmp_path / "results"
    logs.mkdir()
    results.mkdir()
    log = "run_all: training done in 16 s\n" + "".join(
        _run_all_lines(name, seconds, peak, tmp_path)
        for name, seconds, peak in (("00_method_walkthrough", 66, 2.2), ("02_speed_params", 1464, 3.7),
                                    ("03_ablation", 28, 0.6)))
    (logs / "run_all.log").write_text(log)
    (logs / "runs_before.txt").write_text("aaaaaaaaaaaaaaaa\n")
    (logs / "runs_after.txt").write_text("\n".join(["aaaaaaaaaaaaaaaa", *trained]) + "\n")
    (logs / "changed.txt").write_text(changed)
    fresh_clone.main([str(logs), str(results), "--commit", "0123456789abcdef", "--pack",
                      str(_pack(tmp_path / "lab.tar", 6)), "--setup", "127", "--unpack", "6", "--run-all", "1764"])
    return results


def test_the_lab_line_is_computed_from_what_run_all_printed(tmp_path):
    results = _measured(tmp_path, trained=[], changed=" M results/figure6_workers.csv\n"
                                                      " M results/figure6_workers.provenance.json\n"
                                                      " M notebooks/02_speed_params.ipynb\n")
    found = json.loads((results / fresh_clone.RECORD).read_text())
    assert found["notebooks"] == {"00_method_walkthrough": {"peak_gib": 2.2, "seconds": 66},
                                  "02_speed_params": {"peak_gib": 3.7, "seconds": 1464},
                                  "03_ablation": {"peak_gib": 0.6, "seconds": 28}}
    assert found["seconds"]["plan"] == 16 and found["changed_tables"] == ["results/figure6_workers.csv"]
    line = fresh_clone.line(results)
    for said in ("commit 0123456", "6 trained models is 3 MiB", "set-up took 2.1 min", "`--unpack` 6.0 s",
                 "`./run_all.sh` 29.4 min, adding no run to the run cache", "temporary cache) took 24.4 min of it",
                 "the other 2 notebooks 1.6 min together", "3.7 GiB (02_speed_params), the others at most 2.2 GiB",
                 "but for 02_speed_params's timings (1 table)"):
        assert said in line, (said, line)


def test_the_lab_line_says_what_was_trained_and_which_tables_moved(tmp_path):
    results = _measured(tmp_path, trained=["bbbbbbbbbbbbbbbb"], changed=" M results/table2_performance.csv\n")
    line = fresh_clone.line(results)
    assert "adding 1 trained runs to the run cache" in line and "differ from the committed ones: " \
        "results/table2_performance.csv" in line, line
    assert "Not measured yet" in fresh_clone.line(tmp_path)


def test_the_readme_carries_the_lab_line_of_results():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert fresh_clone.line(ROOT / "results") in readme
