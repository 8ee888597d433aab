"""Files every step writes and reads: whole or not at all (a temporary file, flushed to disk, then
a rename), JSON and CSV writers, job logs, and DataError for input files that cannot be used."""

import errno
import glob
import json
import os
import secrets
import shutil
import sys
import traceback
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

# Below this much free space a failed write is taken for a full disk (atomic_path).
DISK_FULL_BYTES = 1 << 20
TMP_TOKEN_BYTES = 4  # a temporary file is .<name>.<8 hex digits>.tmp


class Explained(Exception):
    """A failure whose message says what happened and what to do: a job's log and its terminal
    show that sentence alone (log_to), not a traceback that buries it."""


class DataError(Explained, RuntimeError):
    """Bad or missing input data; the message names the file and how to fix it."""


class DiskFull(Explained, OSError):
    """A file could not be written because its filesystem has no space left."""


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed.
    The data and the rename are flushed to disk (fsync), so after a crash `path` holds the old or
    the new file, never a torn one. The temporary file has the umask's mode, like any new file.
    Temporary files of earlier writes of `path` that were killed midway are removed first (each
    file has one writer: one job, or the process holding its checkpoint folder's lock)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.{'?' * 2 * TMP_TOKEN_BYTES}.tmp"):
        stale.unlink(missing_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(TMP_TOKEN_BYTES)}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield str(tmp)
        fsync(tmp)
        os.replace(tmp, path)
        fsync(path.parent)
    except Exception as err:
        # ENOSPC, or next to no space left: the C++ writers behind torch.save report a full disk without errno.
        no_space = isinstance(err, OSError) and err.errno == errno.ENOSPC
        if no_space or shutil.disk_usage(path.parent).free < DISK_FULL_BYTES:
            raise DiskFull(f"{path} was not written: the disk is full; free some space and re-run") from err
        raise
    finally:
        tmp.unlink(missing_ok=True)


def fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def log_to(path):
    """Send stdout and stderr to a log file for the duration: an Explained failure as its message
    (the job then exits with status 1), any other with its traceback."""
    with open(path, "w", buffering=1) as log, redirect_stdout(log), redirect_stderr(log):
        try:
            yield
        except Explained as err:
            log.write(f"{err}\n")
            sys.__stderr__.write(f"{err}\n(log: {path})\n")
            raise SystemExit(1) from None
        except BaseException:
            traceback.print_exc(file=log)
            sys.__stderr__.write(f"failed; see {path}\n")
            raise


def write_json(obj, path) -> None:
    with atomic_path(path) as target:
        Path(target).write_text(json.dumps(obj, indent=2) + "\n")


def write_csv(rows, path, columns=None) -> None:
    """A list of dicts, or a DataFrame, as a CSV file, written atomically; `columns` are its header
    and their order (the header is written even without rows)."""
    import pandas as pd

    with atomic_path(path) as target:
        pd.DataFrame(rows, columns=columns).to_csv(target, index=False)
