"""One rule for every file samprompt writes: never over an input, never into an input dataset, never over a
file that someone else made.

Every command plans its outputs before it works and hands them to :func:`check_outputs`,
which refuses, with one line naming both paths, a planned path that

* is an input file;
* lies inside an input folder (a dataset's ``images/``, ``masks/``, ``ground_truth/``, a
  DICOM series, a training folder), or directly in the folder an input file was read
  from (where it would be read as an input by the next run);
* is an existing file that samprompt did not write, unless ``overwrite`` is given.

What samprompt wrote is known from a ledger: each folder that samprompt writes into keeps
``.samprompt-outputs.jsonl``, one line per file written (its name, sha256 and role), appended
by every atomic write (:mod:`samprompt.io`). A file whose current hash is one the ledger
recorded for its name as an ``output`` is ours and may be replaced by a rerun; any other
existing file is someone's data. Generated data sets (``samprompt synth``) are written with
the role ``data``: they are inputs to every other command, so only a generator's own rerun
(:func:`check_new_or_own_folder`) may replace them. Appends are single ``write`` calls of one
short line, so processes writing into one folder (Dask workers) do not tear each other's lines.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Iterable, Iterator

from .errors import SampromptError

LEDGER = ".samprompt-outputs.jsonl"
_role = ["output"]  # what the writes of this process are now: "output", or "data" inside a generator


@contextmanager
def writing_data() -> Iterator[None]:
    """Writes inside are generated data sets (role ``data``), not outputs a later run may replace."""
    _role.append("data")
    try:
        yield
    finally:
        _role.pop()


def data_writer(fn):
    """Decorate a function that writes a generated data set: its writes get the role ``data``."""

    @wraps(fn)
    def wrapped(*args, **kwargs):
        with writing_data():
            return fn(*args, **kwargs)

    return wrapped


class OutputError(SampromptError):
    """A planned output would land on an input, inside an input folder, or on someone else's file."""


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def record_written(path: str | Path, digest: str | None = None) -> None:
    """Note in the folder's ledger that samprompt wrote ``path`` (with this sha256; hashed when None)."""
    path = Path(path)
    digest = digest or sha256_of(path)
    line = (json.dumps({"name": path.name, "sha256": digest, "role": _role[-1]}) + "\n").encode()
    fd = os.open(path.parent / LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _ledger(folder: Path, roles: tuple[str, ...] = ("output",)) -> dict[str, set[str]]:
    """{file name: the sha256s samprompt wrote it with, in one of ``roles``} of a folder."""
    known: dict[str, set[str]] = {}
    try:
        text = (folder / LEDGER).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return known
    for line in text.splitlines():
        try:
            rec = json.loads(line)
            if rec.get("role", "output") in roles:
                known.setdefault(rec["name"], set()).add(rec["sha256"])
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            continue  # a torn line
    return known


def written_by_samprompt(path: str | Path, roles: tuple[str, ...] = ("output",)) -> bool:
    """True when the file's current contents are ones samprompt wrote under that name (as an output)."""
    path = Path(path)
    hashes = _ledger(path.parent, roles).get(path.name)
    return bool(hashes) and path.is_file() and sha256_of(path) in hashes


def check_outputs(planned: Iterable[str | Path], *, inputs: Iterable[str | Path] = (),
                  input_dirs: Iterable[str | Path] = (), overwrite: bool = False, hint: str = "--out") -> None:
    """Refuse, before any work, a planned output that breaks the rule (see the module doc).

    ``inputs``: files the run reads (their folders count as input folders too); ``input_dirs``: folders
    whose contents are inputs (datasets, series, training folders); ``hint``: the option to change.
    """
    given = [Path(p).resolve() for p in inputs]
    files = {p for p in given if not p.is_dir()}
    trees = {Path(d).resolve() for d in input_dirs} | {p for p in given if p.is_dir()}  # a DICOM series folder
    beside = {f.parent for f in files}  # the folder an input was read from (its subfolders are fine)
    ledgers: dict[Path, dict[str, set[str]]] = {}
    for p in planned:
        path = Path(p)
        real = path.resolve()
        if real in files:
            raise OutputError(f"{path} would overwrite the input {real}; choose another {hint}")
        inside = next((d for d in trees if d == real or d in real.parents), None)
        if inside is None and real.parent in beside:
            inside = real.parent
        if inside is not None:
            raise OutputError(f"{path} would be written inside the input folder {inside}; choose another {hint}")
        if path.is_dir() and not path.is_symlink():
            raise OutputError(f"{path} is a folder, where a file would be written; choose another {hint}")
        if path.exists() and not overwrite:
            known = ledgers.setdefault(real.parent, _ledger(real.parent)).get(real.name)
            if not known:
                raise OutputError(f"{path} exists and was not written by samprompt; choose another {hint}, or add "
                                  "--overwrite to replace it")
            if sha256_of(real) not in known:
                raise OutputError(f"{path} was changed since samprompt wrote it (by hand?); choose another {hint}, "
                                  "or add --overwrite to replace it")


def check_out_folder(out: str | Path, hint: str = "--out") -> Path:
    """``out`` must be a folder or not exist yet: a file is refused (one line)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{hint} {out} is a file, not a folder; choose a folder")
    return out


def foreign_files(folder: str | Path, limit: int = 1000, roles: tuple[str, ...] = ("output", "data")) -> list[Path]:
    """Files under ``folder`` (recursively, up to ``limit`` looked at) that samprompt did not write."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found, seen = [], 0
    ledgers: dict[Path, dict[str, set[str]]] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name == LEDGER or path.name.startswith("."):
            continue
        seen += 1
        if seen > limit:
            break
        known = ledgers.setdefault(path.parent, _ledger(path.parent, roles)).get(path.name)
        if not known or sha256_of(path) not in known:
            found.append(path)
    return found


def check_new_or_own_folder(out: str | Path, overwrite: bool = False, hint: str = "--out") -> Path:
    """``out`` must not exist, or hold only files samprompt wrote (a generator's rerun); else refused unless
    ``overwrite``. For commands that fill a whole folder (``synth``, ``demo``)."""
    out = check_out_folder(out, hint)
    foreign = [] if overwrite else foreign_files(out)
    if foreign:
        raise OutputError(f"{out} holds {len(foreign)} file(s) samprompt did not write (e.g. {foreign[0]}); choose a "
                          f"new folder for {hint}, or add --overwrite to write into it anyway")
    return out
