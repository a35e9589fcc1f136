"""Trained models for a class: ``python -m acmtl runs --pack FILE`` / ``--unpack FILE``.

The notebooks' analyses (02's backend agreement, 04-07) load trained models, which a fresh clone lacks: its
``results/runs/`` records make the tables, not the weights. A pack is one tar file holding those runs from the run
cache (weights in safetensors, configuration, scores, curve, tags of the scored splits and of every text tagged since:
no optimizer state, checkpoint or export cache), their
records, and a manifest first: the run-defining code's digest (:func:`acmtl.companion.runs.code_digest`) and the
sha256 of every file. Unpacking checks everything before it moves a run into the run cache, so a pack of other code,
a damaged or truncated file, or a member that would land outside the cache (``..``, an absolute path, a link) is
refused whole, with one line saying why.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import IO, NamedTuple

from filelock import FileLock

from acmtl.companion import experiments as ex
from acmtl.companion.config import get_profile
from acmtl.companion.publish import committed_parameters
from acmtl.companion.records import record_path
from acmtl.companion.runs import RunSpec, code_digest, is_complete
from acmtl.data.fetch import atomic_write_bytes
from acmtl.version import __version__

MANIFEST = "acmtl-pack.json"  # the archive's first member
FORMAT = "acmtl-pack"
VERSION = 1
# what an analysis needs of a finished run (runs.py, core/train.py): the model folder less its ONNX exports (a cache,
# rebuilt on first use), the configuration, the scores and curve, the tags on every split scored, and the texts the
# model has tagged since (runs.run_predictions' folder: 06's 1,413 case texts take minutes to tag, seconds to read)
RUN_FILES = ("run.json", "metrics.json", "curve.json", "predictions.json")
MODEL_DIR, SKIPPED_IN_MODEL = "model", ("onnx",)
TAGGED_DIR = "predictions"
FOLDER = re.compile(r"[0-9a-f]{16}")  # runs.run_id
CHUNK = 1 << 20


class PackError(ValueError):
    """A pack that cannot be written (a run missing from the cache) or is refused (other code, damage, escape)."""


class Needed(NamedTuple):
    """A trained model an analysis loads: its spec and the notebooks that load it."""

    spec: RunSpec
    notebooks: tuple[str, ...]


# The notebooks whose analyses load trained models: ex.train_grid(..., weights=True), and 05_robustness, whose
# committed Figure 8(b) reads each run's counts from results/noise/ (acmtl.companion.noise_counts) but whose exercises
# tag seed 0's models again (other noise rates). tests/test_pack.py checks that no other notebook asks for weights.
ANALYSES = ("02_speed_params", "04_attention", "05_robustness", "06_legal_theme_river", "07_error_analysis")
EXERCISES_ONLY = ("05_robustness",)  # of ANALYSES: the models only its exercises load


def _grids(profile: str) -> list[tuple[str, str, list[str], int | None, int, dict]]:
    """(notebook, corpus, architectures, size, seed, training overrides) of each notebook's weights=True grid, as the
    notebook builds it from its committed parameters cell: the notebooks are the one place these are typed."""
    prof = get_profile(profile)
    params = {notebook: committed_parameters(notebook) for notebook in ANALYSES[1:]}

    def size(notebook: str) -> int:  # 04, 05 and 07: `list(prof.sizes[:1]) if profile == "smoke" else [size]`
        return prof.sizes[0] if profile == "smoke" else params[notebook]["size"]

    p4, p5, p6, p7 = (params[notebook] for notebook in ANALYSES[1:])
    return [("02_speed_params", "msra", ["acmtl"], prof.ablation_size, 0, {}),  # its cell: [prof.ablation_size], [0]
            ("04_attention", "msra", list(p4["archs"]), size("04_attention"), p4["seed"], {}),
            ("05_robustness", "msra", list(p5["archs"]), size("05_robustness"), p5["seed"], {"test_curve": True}),
            ("06_legal_theme_river", "legal", ["acmtl"], ex.legal_size(profile), p6["seed"], {}),
            ("07_error_analysis", "msra", [p7["arch"]], size("07_error_analysis"), p7["seed"], {})]


def analysis_runs(profile: str = "default") -> dict[str, Needed]:
    """The trained models the notebooks' analyses load under ``profile``, by folder in the run cache (a model two
    notebooks share is listed once): what a pack holds."""
    found: dict[str, Needed] = {}
    for notebook, corpus, archs, size, seed, overrides in _grids(profile):
        specs = [ex.run_spec(profile, ex.corpus_spec(profile, corpus), arch, size, seed, **overrides)
                 for arch in archs]
        for spec, run_dir in zip(specs, ex.run_dirs_of(specs, Path())):
            earlier = found.get(run_dir.name)
            found[run_dir.name] = Needed(spec, (*earlier.notebooks, notebook) if earlier else (notebook,))
    return found


def describe(needed: Needed) -> str:
    spec = needed.spec
    return (f"{spec.arch} on {spec.corpus.partition('=')[0]} size={spec.size} seed={spec.train.seed} "
            f"(notebook {', '.join(needed.notebooks)})")


# -- writing ------------------------------------------------------------------------------------------------------


def _run_files(run_dir: Path) -> list[Path]:
    """The files of a finished run that a pack carries, sorted."""
    model = run_dir / MODEL_DIR
    files = [run_dir / name for name in RUN_FILES]
    files += [p for p in model.rglob("*")
              if p.is_file() and not p.is_symlink() and p.relative_to(model).parts[0] not in SKIPPED_IN_MODEL]
    files += [p for p in (run_dir / TAGGED_DIR).glob("*.json") if p.is_file() and not p.is_symlink()]
    return sorted(files)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _member(name: str, size: int) -> tarfile.TarInfo:
    """A plain file entry with nothing of this machine in it (owner, time, permissions)."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info


def write_pack(path: str | Path, runs: Mapping[str, str], root: Path, results: Path) -> dict:
    """Write the finished runs ``runs`` (folder -> what it is, for the manifest and errors) of the run cache ``root``
    and their records (under ``results``, :func:`acmtl.companion.records.record_path`) to the tar file ``path``;
    return its manifest. PackError naming every run the cache or the records lack, before anything is written."""
    missing = [f"{what} [{folder}]" for folder, what in runs.items() if not is_complete(root / folder)]
    if missing:
        raise PackError(f"the run cache {root} lacks {len(missing)} of the {len(runs)} trained models to pack: "
                        f"{'; '.join(missing)}; the notebooks named train them (./run_all.sh NOTEBOOK)")
    unrecorded = [f"{what} [{folder}]" for folder, what in runs.items() if not record_path(results, folder).is_file()]
    if unrecorded:
        raise PackError(f"no record in {results / 'runs'} for {'; '.join(unrecorded)}: "
                        "`python -m acmtl runs --plan default --train` writes them from the run cache")
    sources = {f"records/{folder}.json": record_path(results, folder) for folder in runs}
    for folder in runs:
        sources |= {f"runs/{folder}/{p.relative_to(root / folder).as_posix()}": p for p in _run_files(root / folder)}
    files = {name: {"sha256": _sha256(p), "bytes": p.stat().st_size} for name, p in sorted(sources.items())}
    manifest = {"format": FORMAT, "version": VERSION, "code_sha256": code_digest(), "acmtl_version": __version__,
                "runs": dict(runs), "files": files}
    body = json.dumps(manifest, indent=1, ensure_ascii=False).encode()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as tmp:
        try:
            with tarfile.open(fileobj=tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
                tar.addfile(_member(MANIFEST, len(body)), io.BytesIO(body))
                for name, source in sorted(sources.items()):
                    with source.open("rb") as handle:
                        tar.addfile(_member(name, manifest["files"][name]["bytes"]), handle)
            Path(tmp.name).chmod(0o644)  # a temporary file is private; a pack is meant to be shared
            Path(tmp.name).replace(path)
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise
    return manifest


# -- reading ------------------------------------------------------------------------------------------------------


def _safe_name(name: str, folders: Mapping[str, object]) -> bool:
    """Whether ``name`` is a member a pack may hold: ``records/<folder>.json`` or ``runs/<folder>/...`` of a run the
    manifest lists, relative, with no ``..``, ``.`` or empty part."""
    path = PurePosixPath(name)
    parts = path.parts
    if path.is_absolute() or "\\" in name or any(part in ("", ".", "..") for part in parts) or len(parts) < 2:
        return False
    if parts[0] == "records":
        return len(parts) == 2 and parts[1].endswith(".json") and parts[1][: -len(".json")] in folders
    return parts[0] == "runs" and len(parts) >= 3 and parts[1] in folders


def _check_manifest(manifest: object, source: Path) -> dict:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise PackError(f"{source} is not an acmtl pack of format {FORMAT} {VERSION}")
    if manifest.get("code_sha256") != code_digest():
        raise PackError(f"{source} was packed by other code (run-defining code {str(manifest.get('code_sha256'))[:12]}"
                        f", this checkout {code_digest()[:12]}): its models are not this code's runs; pack them at "
                        "this code, or check out the code that made them")
    runs, files = manifest.get("runs"), manifest.get("files")
    if not (isinstance(runs, dict) and isinstance(files, dict) and all(FOLDER.fullmatch(f) for f in runs)):
        raise PackError(f"{source}: the manifest lists no runs or files")
    unsafe = sorted(name for name in files if not _safe_name(name, runs))
    if unsafe:
        raise PackError(f"{source}: refused, {unsafe[0]!r} would land outside the run cache's run folders")
    return manifest


def _members(tar: tarfile.TarFile, source: Path) -> Iterator[tarfile.TarInfo]:
    """The archive's members in order; a damaged or truncated archive is a PackError."""
    try:
        yield from tar
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise PackError(f"{source} is damaged or truncated ({err}): download or copy it again") from None


def _copy_checked(handle: IO[bytes], target: Path, expected: dict, name: str, source: Path) -> None:
    """Write a member to ``target``, refusing it (PackError) when its size or sha256 is not the manifest's."""
    digest, size = hashlib.sha256(), 0
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with target.open("wb") as out:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise PackError(f"{source} is damaged or truncated at {name} ({err}): download or copy it again") from None
    if size != expected.get("bytes") or digest.hexdigest() != expected.get("sha256"):
        raise PackError(f"{source} is corrupt: {name} does not match its sha256 in the manifest; download or "
                        "copy it again")


def _extract(tar: tarfile.TarFile, source: Path, staging: Path) -> dict:
    """Every member checked into ``staging``: the manifest first, then each file it lists, once, as a plain file."""
    members = _members(tar, source)
    first = next(members, None)
    if first is None or first.name != MANIFEST or not first.isfile():
        raise PackError(f"{source} is not an acmtl pack: it does not start with {MANIFEST}")
    try:
        manifest = json.loads(tar.extractfile(first).read())
    except (ValueError, tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise PackError(f"{source}: unreadable manifest ({err})") from None
    manifest = _check_manifest(manifest, source)
    seen = set()
    for member in members:
        if member.name not in manifest["files"] or member.name in seen:
            what = "twice" if member.name in seen else "without a manifest entry"
            raise PackError(f"{source}: refused, member {member.name!r} comes {what}")
        if not member.isfile():  # a link, a folder or a device: nothing a pack writes
            raise PackError(f"{source}: refused, member {member.name!r} is not a plain file (a link or a device)")
        seen.add(member.name)
        _copy_checked(tar.extractfile(member), staging / member.name, manifest["files"][member.name], member.name,
                      source)
    lacking = sorted(set(manifest["files"]) - seen)
    if lacking:
        raise PackError(f"{source} is truncated: {len(lacking)} files missing, {lacking[0]} first; "
                        "download or copy it again")
    return manifest


def read_pack(path: str | Path, root: Path, results: Path) -> dict[str, str]:
    """Unpack the pack ``path`` into the run cache ``root`` (and the records it carries into ``results``' records
    where they are missing); every file is checked before any run is moved in, so a refused pack leaves nothing.
    A run the cache has finished already is kept as it is. Returns the runs unpacked: folder -> what it is."""
    source = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".unpack-"))  # in the cache: a run moves in by a rename
    try:
        try:
            with tarfile.open(source, mode="r:*") as tar:
                manifest = _extract(tar, source, staging)
        except (tarfile.TarError, EOFError, zlib.error) as err:
            raise PackError(f"{source} is not a readable tar file ({err})") from None
        added = {}
        for folder, what in manifest["runs"].items():
            if not is_complete(staging / "runs" / folder):
                raise PackError(f"{source}: the run {folder} has no metrics.json: not a finished run")
            with FileLock(str(root / folder) + ".lock"):  # as runs.ensure_run takes it
                if not is_complete(root / folder):
                    shutil.rmtree(root / folder, ignore_errors=True)  # an unfinished run: the pack finishes it
                    (staging / "runs" / folder).replace(root / folder)
                    added[folder] = what
            record = staging / "records" / f"{folder}.json"
            if record.is_file() and not record_path(results, folder).is_file():
                atomic_write_bytes(record_path(results, folder), record.read_bytes())
        return added
    finally:
        shutil.rmtree(staging, ignore_errors=True)
