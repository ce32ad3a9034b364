"""Review: each file's state, the reviewers' verdicts and the folder's status.

A file is ``new`` (nothing saved), ``in progress`` (saved), ``done`` (its annotator
marked it finished), then ``accepted`` or ``rejected`` (with a comment) by a
reviewer. A rejected file goes back to its annotator, who sees the comment on
opening it; marking it done again puts it back in the reviewers' queue.

Verdicts live in ``OUT/review.json`` beside the saves, never inside them, so a
review never races an annotator's autosave: per file key, who marked it done and
when, the current verdict (``state``, ``by``, ``at``, ``comment``) and the
history of verdicts. ``OUT/status.json`` is rewritten after every done and every
verdict: each file's state and the counts per state and per user.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from ..errors import SampromptError
from ..io import atomic_write_text

STATES = ("new", "in progress", "done", "accepted", "rejected")
VERDICTS = ("accepted", "rejected")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def file_state(saved: str, entry: dict | None) -> str:
    """A file's state from its save status (``""``, ``saved`` or ``done``) and its review entry."""
    if saved == "done":
        verdict = (entry or {}).get("verdict")
        return verdict["state"] if verdict else "done"
    return "in progress" if saved == "saved" else "new"


class ReviewLedger:
    """``OUT/review.json``: per file key, ``done_by``/``done_at``, the current ``verdict`` and the ``history``."""

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / "review.json"
        self._lock = threading.Lock()
        self.entries: dict[str, dict] = {}
        if self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text(encoding="utf-8")).get("files", {})
            except (ValueError, UnicodeDecodeError, AttributeError) as exc:
                raise SampromptError(f"{self.path} is corrupt ({exc}); move it away to start the review afresh")

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def _write(self) -> None:
        atomic_write_text(self.path, json.dumps({"files": self.entries}, indent=1, sort_keys=True) + "\n")

    def marked_done(self, key: str, user: str | None) -> bool:
        """Record who marked ``key`` done; a rejected file returns to the reviewers (True when it was rejected)."""
        with self._lock:
            e = self.entries.setdefault(key, {"history": []})
            was_rejected = (e.get("verdict") or {}).get("state") == "rejected"
            e.update(done_by=user, done_at=_now(), verdict=None)
            self._write()
            return was_rejected

    def unmarked(self, key: str) -> None:
        """``key`` is not done any more (its done was taken back): no verdict stands."""
        with self._lock:
            if key in self.entries:
                self.entries[key].update(done_by=None, done_at=None, verdict=None)
                self._write()

    def judge(self, key: str, state: str, user: str | None, comment: str = "") -> dict:
        """Record a reviewer's verdict on ``key``; a rejection needs a comment for the annotator."""
        if state not in VERDICTS:
            raise SampromptError(f"a verdict is {' or '.join(VERDICTS)}, not {state!r}")
        comment = comment.strip()
        if state == "rejected" and not comment:
            raise SampromptError("say why in the comment: a rejected file goes back to its annotator with it")
        with self._lock:
            e = self.entries.setdefault(key, {"history": []})
            verdict = {"state": state, "by": user, "at": _now(), "comment": comment}
            e["verdict"] = verdict
            e.setdefault("history", []).append(verdict)
            self._write()
            return verdict


def write_status(out: Path, states: dict[str, str], ledger: ReviewLedger, assigned: dict[str, str] | None = None) -> Path:
    """``OUT/status.json``: each file's state, who it is assigned to, who did it, and the counts per state and
    per user."""
    files, per_user = {}, {}
    for key, state in sorted(states.items()):
        e = ledger.get(key) or {}
        v = e.get("verdict") or {}
        files[key] = {"state": state, "assigned_to": (assigned or {}).get(key),
                      "done_by": e.get("done_by") if state in STATES[2:] else None,
                      "reviewed_by": v.get("by"), "comment": v.get("comment") or None}
        if files[key]["done_by"]:
            per_user.setdefault(files[key]["done_by"], Counter())[state] += 1
        if v.get("by"):
            per_user.setdefault(v["by"], Counter())["reviewed"] += 1
    doc = {"counts": {s: sum(st == s for st in states.values()) for s in STATES}, "files": files,
           "per_user": {u: dict(c) for u, c in sorted(per_user.items(), key=lambda kv: str(kv[0]))}}
    return atomic_write_text(Path(out) / "status.json", json.dumps(doc, indent=1) + "\n")
