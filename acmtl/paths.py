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
