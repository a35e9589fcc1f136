"""``acmtl runs --pack`` / ``--unpack``: trained models for a class, refused whole when they are not this code's,
damaged, or would land outside the run cache. Runs are real (tiny): a 2-layer encoder on a tiny corpus."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from acmtl.companion import experiments as ex
from acmtl.companion import pack as packs
from acmtl.companion import runs
from acmtl.companion.runs import RunSpec, is_complete
from acmtl.core.checkpoint import load_pretrained
from acmtl.core.train import TrainConfig

REPO = Path(__file__).resolve().parents[1]
TAGGED = ["北京欢迎你", "上海"]  # texts a run tagged after training (06 tags the case texts so)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_corpus_dir, tiny_encoder_dir):
    """Two finished tiny runs in a run cache, their records beside it, and a pack of them."""
    base = tmp_path_factory.mktemp("packed")
    specs = [RunSpec(corpus=f"tiny={tiny_corpus_dir}", arch=arch, size=None, encoder=str(tiny_encoder_dir),
                     train=TrainConfig(epochs=1, patience=1, seed=0)) for arch in ("encoder_crf", "acmtl")]
    dirs = ex.run_dirs_of(specs, base / "cache")
    ex.ensure_records(specs, dirs, base / "results", 1, ex.tqdm(disable=True))
    tagged = runs.run_predictions(dirs[1], TAGGED)  # kept in the run's predictions/, which a pack carries
    (dirs[0] / "model" / "onnx").mkdir()  # an export cache, which a pack leaves out
    (dirs[0] / "model" / "onnx" / "x.onnx").write_bytes(b"0" * 100)
    runs_wanted = {d.name: f"tiny {s.arch}" for s, d in zip(specs, dirs)}
    manifest = packs.write_pack(base / "models.tar", runs_wanted, base / "cache", base / "results")
    return {"specs": specs, "dirs": dirs, "base": base, "pack": base / "models.tar", "manifest": manifest,
            "runs": runs_wanted, "tagged": tagged}


def _rewrite(source: Path, target: Path, change) -> Path:
    """A copy of the pack ``source`` with ``change(manifest, members)`` applied: members are [TarInfo, bytes] pairs."""
    with tarfile.open(source) as tar:
        members = [[m, tar.extractfile(m).read()] for m in tar.getmembers()]
    manifest = json.loads(members[0][1])
    change(manifest, members)
    members[0][1] = json.dumps(manifest).encode()
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return target


def test_a_pack_holds_the_weights_config_records_and_no_optimizer_state_or_cache(trained):
    manifest = trained["manifest"]
    assert manifest["code_sha256"] == runs.code_digest() and set(manifest["runs"]) == set(trained["runs"])
    names = set(manifest["files"])
    for folder in trained["runs"]:
        assert {f"records/{folder}.json", f"runs/{folder}/metrics.json", f"runs/{folder}/model/model.safetensors",
                f"runs/{folder}/model/config.json", f"runs/{folder}/run.json"} <= names
    assert not [n for n in names if re.search(r"checkpoint|optimizer|/onnx/|\.(pt|bin|lock)$", n)]
    with tarfile.open(trained["pack"]) as tar:
        assert tar.getnames() == [packs.MANIFEST, *sorted(names)]


def test_unpacked_runs_are_found_and_nothing_is_trained(trained, tmp_path, monkeypatch):
    cache, results = tmp_path / "cache", tmp_path / "results"
    assert packs.read_pack(trained["pack"], cache, results) == trained["runs"]
    def refuse(*args, **kwargs):
        raise AssertionError("a run of the pack was trained again")

    monkeypatch.setattr(runs, "train", refuse)
    dirs = ex.run_dirs_of(trained["specs"], cache)
    found = ex.ensure_records(trained["specs"], dirs, results, 1, ex.tqdm(disable=True), weights=True)
    assert set(found) == set(trained["runs"]) and all(is_complete(d) for d in dirs)
    assert runs.ensure_run(trained["specs"][1], root=cache, progress=False) == dirs[1]
    load_pretrained(dirs[1] / "model")
    assert packs.read_pack(trained["pack"], cache, results) == {}  # a second time: every run is there

    def retag(*args, **kwargs):
        raise AssertionError("a text the pack's run had tagged was tagged again")

    monkeypatch.setattr(runs, "load_pretrained", retag)
    assert runs.run_predictions(dirs[1], TAGGED) == trained["tagged"]


def test_a_missing_run_is_named_before_anything_is_written(trained, tmp_path):
    wanted = {**trained["runs"], "0123456789abcdef": "acmtl on msra size=1000 seed=0 (notebook 04_attention)"}
    with pytest.raises(packs.PackError, match=r"lacks 1 of the 3 .*acmtl on msra size=1000 seed=0 "
                                              r"\(notebook 04_attention\) \[0123456789abcdef\]"):
        packs.write_pack(tmp_path / "p.tar", wanted, trained["base"] / "cache", trained["base"] / "results")
    assert not list(tmp_path.iterdir())


def _other_code(manifest, members):
    manifest["code_sha256"] = "0" * 64


def _flipped_byte(manifest, members):
    member = next(m for m in members if m[0].name.endswith("model.safetensors"))
    member[1] = member[1][:-1] + bytes([member[1][-1] ^ 1])


def _escape(name: str):
    def change(manifest, members):
        info = tarfile.TarInfo(name)
        members.append([info, b"escaped"])
        manifest["files"][name] = {"sha256": __import__("hashlib").sha256(b"escaped").hexdigest(), "bytes": 7}
    return change


def _symlink(manifest, members):
    folder = next(iter(manifest["runs"]))
    info = tarfile.TarInfo(f"runs/{folder}/model/link")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    members.append([info, b""])
    manifest["files"][info.name] = {"sha256": "", "bytes": 0}


@pytest.mark.parametrize(("change", "said"), [
    (_other_code, r"packed by other code \(run-defining code 000000000000"),
    (_flipped_byte, r"corrupt: runs/\w+/model/model.safetensors does not match its sha256"),
    (_escape("../outside.json"), r"refused, '../outside.json' would land outside"),
    (_escape("/tmp/acmtl-absolute.json"), r"refused, '/tmp/acmtl-absolute.json' would land outside"),
    (_escape("runs/../../outside.json"), r"would land outside"),
    (_symlink, r"refused, member 'runs/\w+/model/link' is not a plain file"),
])
def test_a_bad_pack_is_refused_whole_with_one_line(trained, tmp_path, change, said):
    bad = _rewrite(trained["pack"], tmp_path / "bad.tar", change)
    cache = tmp_path / "cache"
    with pytest.raises(packs.PackError, match=said) as refused:
        packs.read_pack(bad, cache, tmp_path / "results")
    assert "\n" not in str(refused.value)
    assert not [p for p in cache.iterdir()] and not (tmp_path / "results").exists()  # nothing moved in
    assert not (tmp_path / "outside.json").exists() and not Path("/tmp/acmtl-absolute.json").exists()


def test_a_truncated_pack_is_refused(trained, tmp_path):
    data = trained["pack"].read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(packs.PackError, match=r"truncated"):
        packs.read_pack(cut, tmp_path / "cache", tmp_path / "results")
    assert not list((tmp_path / "cache").iterdir())


def test_the_cli_refuses_a_bad_pack_with_one_line_and_unpacks_a_good_one(trained, tmp_path):
    bad = _rewrite(trained["pack"], tmp_path / "bad.tar", _other_code)
    env = {"ACMTL_RUNS": str(tmp_path / "cache"), "ACMTL_OUTPUT_ROOT": str(tmp_path / "out")}
    run = lambda *args: subprocess.run([sys.executable, "-m", "acmtl", "runs", *args], capture_output=True,
                                       text=True, cwd=REPO, env={**__import__("os").environ, **env}, timeout=600)
    refused = run("--unpack", str(bad))
    assert refused.returncode == 2 and refused.stderr.splitlines()[0].startswith("acmtl runs: error: ")
    assert "packed by other code" in refused.stderr.splitlines()[0]
    done = run("--unpack", str(trained["pack"]))
    assert done.returncode == 0, done.stderr
    assert all(is_complete(tmp_path / "cache" / folder) for folder in trained["runs"])
    assert all((tmp_path / "out" / "results" / "runs" / f"{folder}.json").is_file() for folder in trained["runs"])


def test_the_pack_holds_every_model_a_notebook_loads():
    """The notebooks that load trained models (train_grid(..., weights=True)) are the ones the pack covers, and
    each of their grids is one the pack lists (read from the notebooks' committed parameters)."""
    asking = {path.stem for path in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")
              if any("weights=True" in "".join(cell["source"]) and "train_grid" in "".join(cell["source"])
                     for cell in json.loads(path.read_text(encoding="utf-8"))["cells"] if cell["cell_type"] == "code")}
    assert asking == set(packs.ANALYSES) - set(packs.EXERCISES_ONLY)
    grids = packs._grids("default")
    assert [g[0] for g in grids] == list(packs.ANALYSES)
    assert ("04_attention", "msra", ["bert_mhsa", "bert_mhsa_cnn", "acmtl"], 1000, 0, {}) in grids
