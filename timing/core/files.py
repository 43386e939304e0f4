"""Writing files so that a reader, or the next run after a crash, sees the old file or the new one, never half.

Every output goes through here: the content is written to a new file beside
the target (same folder, so the same file system), flushed to disk, and moved
over the target with :func:`os.replace`, which is atomic on POSIX and Windows.
A folder (a model, a report) is built beside its target and swapped in by
:func:`replace_dir`. Output files get the usual permissions (``0666`` less the
umask), not the private ``0600`` of :func:`tempfile.mkstemp`.

Temporary names start with a dot and end with ``.tmp``; :func:`remove_stale`
deletes those a killed process left behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pandas as pd

TMP_SUFFIX = ".tmp"


def temp_beside(path: Path) -> Path:
    """A new file name beside ``path`` (not yet existing) to write before :func:`os.replace`."""
    path = Path(path)
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}")
        if not tmp.exists():
            return tmp


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform lets a folder be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def publish(tmp: Path, path: Path) -> None:
    """Move the finished ``tmp`` over ``path`` (atomically) with the usual file permissions."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)
    _fsync_dir(Path(path).parent)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path to write to; it becomes ``path`` when the block succeeds, and is removed
    when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_writer(path: Path, newline: str = "", binary: bool = False) -> Iterator[IO[Any]]:
    """A file (UTF-8 text, or bytes with ``binary``) that appears at ``path`` once the block succeeds."""
    with atomic_path(path) as tmp:
        if binary:
            with open(tmp, "xb") as fh:
                yield fh
        else:
            with open(tmp, "x", encoding="utf-8", newline=newline) as fh:
                yield fh


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_writer(path, newline="\n") as fh:
        fh.write(text)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_writer(path, binary=True) as fh:
        fh.write(data)


def write_csv_atomic(df: pd.DataFrame, path: Path, **to_csv: Any) -> None:
    """``df`` as CSV (UTF-8, LF, no index) at ``path``, atomically."""
    with atomic_writer(path) as fh:
        df.to_csv(fh, index=False, lineterminator="\n", **to_csv)


def write_parquet_atomic(df: Any, path: Path) -> None:
    """A pandas frame or an Arrow table as Parquet at ``path``, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        if isinstance(df, pa.Table):  # as pandas' to_parquet writes the table it converts to
            pq.write_table(df, tmp, compression="snappy")
        else:
            df.to_parquet(tmp, index=False)


def new_dir_beside(folder: Path) -> Path:
    """A new, empty folder beside ``folder`` to build before :func:`replace_dir`."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(folder)
    tmp.mkdir()
    return tmp


def replace_dir(tmp: Path, folder: Path) -> None:
    """Put the finished folder ``tmp`` in place of ``folder``.

    A folder cannot be replaced in one atomic step, so the old one is first
    renamed aside (``.NAME.old``), the new one renamed in, and the old one
    removed. A crash between the two renames leaves no ``folder`` but its old
    copy aside, which :func:`recover_dir` (called by every reader) puts back.
    """
    folder = Path(folder)
    recover_dir(folder)
    aside = _aside(folder)
    if folder.exists():
        os.replace(folder, aside)
    os.replace(tmp, folder)
    _fsync_dir(folder.parent)
    shutil.rmtree(aside, ignore_errors=True)


def _aside(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.old")


def recover_dir(folder: Path) -> None:
    """Undo a :func:`replace_dir` cut short: the old copy goes back where the new one never arrived."""
    folder, aside = Path(folder), _aside(Path(folder))
    if aside.exists():
        if folder.exists():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(aside, folder)


def remove_stale(folder: Path, older_than_seconds: float = 3600.0) -> list[Path]:
    """Delete temporary files and folders (``.*.tmp``) a killed process left in ``folder``; only
    those untouched for ``older_than_seconds``, so a run in progress keeps its own."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    now = time.time()
    for p in folder.glob(f".*{TMP_SUFFIX}"):
        try:
            if now - p.stat().st_mtime < older_than_seconds:
                continue
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except FileNotFoundError:
            continue
    return removed
