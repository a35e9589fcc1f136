"""The command line: every command explains itself; data stats prints the official counts as JSON."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def acmtl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "acmtl", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", [[], ["data"], ["data", "fetch"], ["data", "stats"], ["train"],
                                     ["evaluate"], ["predict"], ["bench"], ["report"], ["runs"], ["tune"]])
def test_every_command_has_help(command):
    result = acmtl(*command, "--help")
    assert result.returncode == 0 and "usage: acmtl" in result.stdout
    assert len(result.stdout.splitlines()) > 5


def test_data_stats_msra_reports_the_official_counts():
    result = acmtl("data", "stats", "msra")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)["splits"]
    train_dev = {t: stats["train"]["entities"][t] + stats["dev"]["entities"][t] for t in ("PER", "LOC", "ORG")}
    assert train_dev == {"PER": 17_615, "LOC": 36_517, "ORG": 20_571}
    assert stats["test"]["entities"] == {"PER": 1_973, "LOC": 2_877, "ORG": 1_331}
    assert stats["train"]["sentences"] + stats["dev"]["sentences"] == 50_652
    assert stats["test"]["sentences"] == 4_620


def test_data_stats_resume_sentence_counts():
    stats = json.loads(acmtl("data", "stats", "resume").stdout)["splits"]
    assert [stats[s]["sentences"] for s in ("train", "dev", "test")] == [3_819, 463, 477]


def test_unknown_model_is_a_clear_error(tiny_corpus_dir, tmp_path):
    result = acmtl("train", "--corpus", f"tiny={tiny_corpus_dir}", "--model", "gpt", "--out", str(tmp_path))
    assert result.returncode != 0 and "unknown architecture 'gpt'" in result.stderr


def test_environment_yml_pins_match_pyproject():
    pyproject = (ROOT / "pyproject.toml").read_text()
    deps = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    pins = set(re.findall(r'"([A-Za-z0-9_.-]+==[^"]+)"', deps))
    env = set(re.findall(r"^\s+- ([A-Za-z0-9_.-]+==\S+)$", (ROOT / "environment.yml").read_text(), re.M))
    assert "torch==2.13.0" in pins and pins <= env
