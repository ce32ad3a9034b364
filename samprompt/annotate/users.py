"""Who may use a shared annotator: a users file with salted password hashes, and the roles.

``users.toml`` holds one table per user::

    [users.ana]
    role = "annotator"          # or "reviewer" (a reviewer annotates too)
    hash = "$argon2id$v=19$..."  # argon2id, salted (argon2-cffi); never the password

``samprompt annotate users add NAME --role annotator [--users users.toml]`` asks for the
password twice without echo and writes the file (atomically, readable by its owner only).
``samprompt annotate FOLDER --users users.toml`` then signs every browser tab in: nothing of the
app is served before a session exists, and each object records who made it and who last
edited it (see :mod:`samprompt.annotate.document`).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, require

ROLES = ("annotator", "reviewer")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class User:
    name: str
    role: str
    hash: str


def _toml():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib


def read_users(path: str | Path) -> dict[str, User]:
    """The users of a users file; a clear error for a missing, malformed or empty one."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no users file {path}; make one with: samprompt annotate users add NAME --role annotator "
                          f"--users {path}")
    try:
        doc = _toml().loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not a valid users file: {exc}") from None
    users = {}
    for name, entry in (doc.get("users") or {}).items():
        ok = isinstance(entry, dict) and entry.get("role") in ROLES and str(entry.get("hash", "")).startswith("$argon2")
        if not ok:
            raise ConfigError(f"{path}: user {name!r} needs a role ({' or '.join(ROLES)}) and an argon2 hash")
        users[name] = User(name, entry["role"], entry["hash"])
    if not users:
        raise ConfigError(f"{path} has no users; add one with: samprompt annotate users add NAME --users {path}")
    return users


def _hasher():
    require("argon2", "app")
    from argon2 import PasswordHasher

    return PasswordHasher()


def hash_password(password: str) -> str:
    """A salted argon2id hash of ``password``."""
    return _hasher().hash(password)


def check_password(users: dict[str, User], name: str, password: str) -> bool:
    """Whether ``name`` is a user and ``password`` is theirs (constant work for unknown names too)."""
    from argon2.exceptions import InvalidHashError, VerificationError

    ph = _hasher()
    user = users.get(name)
    try:
        return ph.verify(user.hash if user else _DUMMY[0], password) and user is not None
    except (VerificationError, InvalidHashError):
        return False


# verified against for unknown names, so that a wrong name costs what a wrong password costs
_DUMMY = ["$argon2id$v=19$m=65536,t=3,p=4$VBhN3VPGkhPHb03yfNFLwA$DwJuv5+Df7EN6skbY80awDG3Q5bhgUX6fH1R+cIIpCc"]


def write_users(path: str | Path, users: dict[str, User]) -> Path:
    """Write the users file (owner read/write only): names sorted, one table each."""
    from ..io import atomic_write_text

    lines = ["# samprompt annotator users: samprompt annotate users add NAME --role annotator|reviewer", ""]
    for name in sorted(users):
        u = users[name]
        lines += [f"[users.{json.dumps(name)}]", f'role = "{u.role}"', f"hash = {json.dumps(u.hash)}", ""]
    path = atomic_write_text(Path(path), "\n".join(lines))
    os.chmod(path, 0o600)
    return path


def users_main(argv: list[str]) -> int:
    """``samprompt annotate users add|list|remove``."""
    p = argparse.ArgumentParser(prog="samprompt annotate users",
                                description="Manage the users of a shared annotator (samprompt annotate --users).")
    p.add_argument("action", choices=["add", "list", "remove"])
    p.add_argument("name", nargs="?", help="user name (letters, digits, . _ -)")
    p.add_argument("--role", choices=ROLES, default="annotator", help="annotator (default) or reviewer")
    p.add_argument("--users", default="users.toml", help="the users file (default: users.toml)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input (scripts)")
    args = p.parse_args(argv)
    path = Path(args.users)
    users = read_users(path) if path.exists() else {}
    if args.action == "list":
        if not users:
            print(f"no users file {path} yet: samprompt annotate users add NAME --users {path}")
        for u in users.values():
            print(f"{u.name}\t{u.role}")
        return 0
    if not args.name or not _NAME.match(args.name):
        raise ConfigError("give a user name of letters, digits, '.', '_' or '-' (at most 64)")
    if args.action == "remove":
        if args.name not in users:
            raise ConfigError(f"no user {args.name!r} in {path}")
        del users[args.name]
        write_users(path, users)
        print(f"removed {args.name} from {path}")
        return 0
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two passwords differ; nothing was written")
    if len(password) < 8:
        raise ConfigError("a password needs at least 8 characters; nothing was written")
    existed = args.name in users
    users[args.name] = User(args.name, args.role, hash_password(password))
    write_users(path, users)
    print(f"{'updated' if existed else 'added'} {args.name} ({args.role}) in {path}")
    return 0
