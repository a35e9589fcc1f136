"""A class's start, measured: a fresh clone of the repository, its set-up, a pack of trained models unpacked and the
README's first command, ``./run_all.sh``, run whole (``scripts/measure_lab.sh``). What it measured is kept in
``results/lab_fresh_clone.json`` and the README's lab line is written from it (:func:`line`, by
``python -m acmtl report``), so the pack's size and the wall time are never typed.

    python -m acmtl.companion.fresh_clone LOG_DIR RESULTS --commit C --pack FILE --setup S --unpack S --run-all S

LOG_DIR holds what the script kept of the clone: ``run_all.log`` (``./run_all.sh``'s output), ``runs_before.txt``
and ``runs_after.txt`` (the run cache's folders around it) and ``changed.txt`` (``git status --porcelain`` after).
"""

from __future__ import annotations

import argparse
import json
import re
import tarfile
from datetime import UTC, datetime
from pathlib import Path

from acmtl.companion.publish import NOTEBOOK_TABLES, describe_device, device_info, duration
from acmtl.data.fetch import atomic_write_bytes

RECORD = "lab_fresh_clone.json"
FORMAT = 1
# the lines ./run_all.sh prints (run_all.sh, acmtl.companion.progress.Watch)
DONE = re.compile(r"run_all: (\d\d_\w+)\.ipynb done in (\d+) s")
PEAK = re.compile(r"run_all: (\d\d_\w+): its kernel and their processes peaked at ([\d.]+) GiB")
PLAN = re.compile(r"run_all: training done in (\d+) s")
TIMINGS = "02_speed_params"  # its tables measure the machine: on another run they differ by design


def notebook_times(log: str) -> dict[str, dict[str, float]]:
    """Each notebook's wall seconds and peak memory (GiB) as ``./run_all.sh`` printed them, in the order run."""
    times: dict[str, dict[str, float]] = {}
    for match in PEAK.finditer(log):
        times.setdefault(match[1], {})["peak_gib"] = float(match[2])
    for match in DONE.finditer(log):
        times.setdefault(match[1], {})["seconds"] = int(match[2])
    return times


def changed_tables(porcelain: str) -> list[str]:
    """The tables of ``results/`` (not their provenance) that ``git status --porcelain`` shows changed or new."""
    paths = [line[3:].strip() for line in porcelain.splitlines() if len(line) > 3]
    return sorted(p for p in paths if p.startswith("results/") and p.endswith(".csv"))


def pack_models(pack: Path) -> int:
    """How many trained models the pack holds (its manifest, the first member)."""
    with tarfile.open(pack) as tar:
        return len(json.loads(tar.extractfile(tar.next()).read())["runs"])


def record(log_dir: Path, *, commit: str, pack: Path, setup: float, unpack: float, run_all: float) -> dict:
    """What one measurement found, from the logs the script kept in ``log_dir``."""
    log = (log_dir / "run_all.log").read_text(encoding="utf-8", errors="replace")
    before, after = ((log_dir / name).read_text(encoding="utf-8").split() for name in ("runs_before.txt",
                                                                                         "runs_after.txt"))
    plan = PLAN.search(log)
    info = device_info()
    return {"format": FORMAT, "commit": commit, "date": datetime.now(UTC).date().isoformat(),
            "machine": describe_device(info), "bf16_native": bool(info.get("bf16_native")),
            "pack": {"file": pack.name, "bytes": pack.stat().st_size, "models": pack_models(pack)},
            "seconds": {"setup": setup, "unpack": unpack, "run_all": run_all,
                        "plan": int(plan[1]) if plan else None},
            "notebooks": notebook_times(log),
            "trained_into_run_cache": sorted(set(after) - set(before)),
            "changed_tables": changed_tables((log_dir / "changed.txt").read_text(encoding="utf-8"))}


def line(results: Path) -> str:
    """The README's lab line, from ``results/lab_fresh_clone.json``; a note where it was not measured."""
    path = results / RECORD
    if not path.is_file():
        return f"*Not measured yet: `scripts/measure_lab.sh PACK` writes `results/{RECORD}`, then this line.*"
    found = json.loads(path.read_text(encoding="utf-8"))
    seconds, notebooks, pack = found["seconds"], found["notebooks"], found["pack"]
    others = {name: n for name, n in notebooks.items() if name != TIMINGS}
    trained = found["trained_into_run_cache"]
    changed = found["changed_tables"]
    timed = {*NOTEBOOK_TABLES[TIMINGS], "claims_verdict"}  # 02's tables, and the claims read from them
    unexpected = [t for t in changed if Path(t).stem not in timed]
    timings = notebooks.get(TIMINGS)
    tables = ("Its tables equal the committed ones." if not changed else
              f"Its tables equal the committed ones but for {TIMINGS}'s timings ({len(changed)} "
              f"table{'s' * (len(changed) != 1)})." if not unexpected
              else f"Tables that differ from the committed ones: {', '.join(unexpected)}.")
    largest = max(notebooks, key=lambda name: notebooks[name]["peak_gib"])
    peaks = f"Peak memory: {notebooks[largest]['peak_gib']:.1f} GiB ({largest})"
    if len(notebooks) > 1:
        peaks += f", the others at most {max(n['peak_gib'] for k, n in notebooks.items() if k != largest):.1f} GiB"
    return (f"**A fresh clone with a pack**, measured by `scripts/measure_lab.sh` (commit {found['commit'][:7]}, "
            f"{found['date']}, {found['machine']}, {'bf16' if found['bf16_native'] else 'fp32 only'}): the pack of "
            f"{pack['models']} trained models is {pack['bytes'] / 2**20:.0f} MiB; set-up took "
            f"{duration(seconds['setup'])}, `--unpack` {duration(seconds['unpack'])}, and `./run_all.sh` "
            f"{duration(seconds['run_all'])}, adding "
            + (f"{len(trained)} trained runs to the run cache" if trained else "no run to the run cache")
            + (f": {TIMINGS}'s deliberate timings (their short training runs in a temporary cache) took "
               f"{duration(timings['seconds'])} of it" if timings else "")
            + f", the other {len(others)} notebooks {duration(sum(n['seconds'] for n in others.values()))} together. "
            f"{peaks}. {tables}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m acmtl.companion.fresh_clone", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log_dir", type=Path, help="the logs scripts/measure_lab.sh kept of the clone")
    parser.add_argument("results", type=Path, help=f"where to write {RECORD} (results/)")
    parser.add_argument("--commit", required=True, help="the commit the clone checked out")
    parser.add_argument("--pack", type=Path, required=True, help="the pack unpacked into the clone")
    for step in ("setup", "unpack", "run-all"):
        parser.add_argument(f"--{step}", type=float, required=True, help=f"seconds of the {step} step")
    args = parser.parse_args(argv)
    found = record(args.log_dir, commit=args.commit, pack=args.pack, setup=args.setup, unpack=args.unpack,
                   run_all=args.run_all)
    atomic_write_bytes(args.results / RECORD, (json.dumps(found, indent=1, ensure_ascii=False) + "\n").encode())
    print(line(args.results))


if __name__ == "__main__":
    main()
