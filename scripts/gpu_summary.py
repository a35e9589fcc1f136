"""The summary of scripts/gpu_check.sh: one line for the machine, one per step, read from the step's files in OUT.

    python scripts/gpu_summary.py OUT
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def machine() -> str:
    import torch
    import transformers

    driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                            capture_output=True, text=True).stdout.strip() or "?"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=REPO).stdout.strip() or "no git"
    return (f"acmtl GPU check at {commit} on {torch.cuda.get_device_name(0)} (driver {driver}, CUDA "
            f"{torch.version.cuda}); torch {torch.__version__}, transformers {transformers.__version__}, "
            f"Python {sys.version.split()[0]}")


def tests(out: Path) -> str:
    counts = [line for line in (out / "tests.log").read_text().splitlines() if re.search(r"\d+ (passed|failed)", line)]
    return counts[-1].strip("= ") if counts else "no pytest summary"


def smoke(out: Path) -> str:
    recorded = re.findall(r"\d+ of \d+ planned runs recorded", (out / "smoke.log").read_text())
    records = (out / "smoke" / "build" / "smoke" / "results" / "runs").glob("*.json")  # ACMTL_OUTPUT_ROOT's
    devices = sorted({json.loads(path.read_text())["where"]["device"] for path in records})
    return f"{recorded[-1] if recorded else 'no plan table'}, trained on {', '.join(devices) or 'nothing'}"


def _run(scores: dict, where: dict, times: dict) -> str:
    return (f"test F1 {100 * scores['test']:.2f} ({where['precision']} on {where['device']}, "
            f"{times['epochs_run']} epochs, {times['train_seconds']:.0f} s in the training loop)")


def msra(out: Path) -> str:
    run = Path((out / "msra.log").read_text().strip().splitlines()[-1])
    metrics = json.loads((run / "metrics.json").read_text())
    ours = _run({"test": metrics["test"]["entity_f1"]}, metrics, metrics)
    record = REPO / "results" / "runs" / f"{run.name}.json"
    if not record.is_file():
        return f"AC-MTL, MSRA-1000, seed 0: {ours}; no CPU record of this run ({record.name}) at this code"
    cpu = json.loads(record.read_text())
    where = cpu["where"] | {"device": cpu["where"].get("cpu") or "the CPU"}
    return (f"AC-MTL, MSRA-1000, seed 0: {ours}; its CPU record: "
            f"{_run({'test': cpu['scores']['test']['f1']}, where, cpu['times'])}")


def bench(out: Path) -> str:
    results = json.loads((out / "bench.json").read_text())
    model, ratios = results["models"]["acmtl_bert_base"], results["ratios"]
    span = lambda pair, digits: f"{pair[0]:,.{digits}f}-{pair[1]:,.{digits}f}"
    speeds = ", ".join(f"{p} {model['tokens_per_s'][p]:,.0f} ({span(model['tokens_per_s_range'][p], 0)})"
                       for p in results["protocol"]["precisions"])
    against = ", ".join(f"{p} {r:.2f}x ({span(ratios['ranges']['bert_base_vs_paper'][p], 2)})"
                        for p, r in ratios["bert_base_vs_paper"].items())
    return (f"AC-MTL at BERT-base size on {results['machine']['gpu']}, tokens/s, median (range) of "
            f"{results['protocol']['repeats']} passes: {speeds}; over the paper's "
            f"{results['protocol']['paper_acmtl_tokens_per_s_v100']:,.0f} on a V100: {against}")


STEPS: dict[str, Callable[[Path], str]] = {"tests": tests, "smoke": smoke, "msra": msra, "bench": bench}


def summary(out: Path) -> list[str]:
    lines = [machine()]
    for row in (out / "steps.tsv").read_text().splitlines():
        name, status, seconds = row.split("\t")
        verdict = "passed" if status == "0" else f"FAILED (exit {status}{', over its time' if status == '124' else ''})"
        try:
            detail = STEPS[name](out)
        except (OSError, KeyError, IndexError, ValueError) as err:  # a step that failed leaves files missing
            detail = f"no result ({type(err).__name__}: {err}); see {out / f'{name}.log'}"
        lines.append(f"{name:<6} {verdict} in {seconds} s: {detail}")
    return lines


if __name__ == "__main__":
    print("\n".join(summary(Path(sys.argv[1]))))
