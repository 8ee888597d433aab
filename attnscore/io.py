"""Files every step writes and reads: whole or not at all (a temporary file, then a rename),
JSON and CSV writers, job logs, and DataError for input files that cannot be used."""

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


class DataError(RuntimeError):
    """Bad or missing input data; the message names the file and how to fix it."""


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextmanager
def log_to(path):
    """Send stdout and stderr (tracebacks included) to a log file for the duration."""
    import sys
    import traceback
    from contextlib import redirect_stderr, redirect_stdout

    with open(path, "w", buffering=1) as log, redirect_stdout(log), redirect_stderr(log):
        try:
            yield
        except BaseException:
            traceback.print_exc(file=log)
            sys.__stderr__.write(f"failed; see {path}\n")
            raise


def write_json(obj, path) -> None:
    """An object as indented JSON, written atomically."""
    with atomic_path(path) as target:
        Path(target).write_text(json.dumps(obj, indent=2) + "\n")


def write_csv(rows: list[dict], path) -> None:
    """A list of dicts as a CSV file, written atomically."""
    import pandas as pd

    with atomic_path(path) as target:
        pd.DataFrame(rows).to_csv(target, index=False)
