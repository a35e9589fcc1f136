"""Where acmtl keeps things outside git: the download cache and the run cache."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Fetched packages, extracted corpora and encoders: ``$ACMTL_CACHE`` or ``~/.cache/acmtl``."""
    return Path(os.environ.get("ACMTL_CACHE", Path.home() / ".cache" / "acmtl")).expanduser()


def runs_dir() -> Path:
    """Trained runs (``runs/<hash>/``): ``$ACMTL_RUNS`` or ``./runs``."""
    return Path(os.environ.get("ACMTL_RUNS", "runs")).expanduser()


def run_folder(name: str | os.PathLike) -> Path:
    """The folder ``name`` names: a folder as given, else a run of the run cache by its hash alone (the last part
    of a ``folder`` that ``python -m acmtl runs`` lists). FileNotFoundError saying which, when neither exists."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise NotADirectoryError(f"{name}: a file, not a folder")
    cached = runs_dir() / path.name
    if str(name) == path.name and cached.is_dir():
        return cached
    hint = (f"; the run cache has {cached}: give its hash, {path.name}, or that folder" if cached.is_dir()
            else f", nor a run of that name in the run cache {runs_dir()} (`python -m acmtl runs` lists them)")
    raise FileNotFoundError(f"{name}: no such folder{hint}")
