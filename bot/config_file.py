"""Reading `expbot.toml` and checking `EXPBOT_DB`: every mistake becomes one line naming the file, section and key."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

SQLITE_HEADER = b"SQLite format 3\x00"
SECTIONS = ("slack", "approvals", "providers")
M = TypeVar("M", bound=BaseModel)


def read_toml(path: Path, problems: list[str]) -> dict[str, Any] | None:
    """The parsed file, or None after adding one problem: a folder, unreadable, not UTF-8 or not TOML."""
    try:
        if path.is_dir():
            problems.append(f"{path}: is a folder, not a config file (give the path of a TOML file)")
            return None
        data = path.read_bytes()
    except OSError as exc:
        problems.append(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})")
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = data[exc.start : exc.start + 1].hex()
        problems.append(f"{path}: is not UTF-8 text (byte 0x{byte} on line {line}); save it as UTF-8")
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: not valid TOML ({exc})")
        return None


def check_db(path: Path) -> list[str]:
    """Problems with the SQLite file: a folder, unreadable, or a file that is not an SQLite database."""
    try:
        if not path.parent.exists():
            return [f"EXPBOT_DB: the folder {path.parent} does not exist"]
        if not path.parent.is_dir():
            return [f"EXPBOT_DB: {path.parent} is not a folder"]
        if path.is_dir():
            return [f"EXPBOT_DB: {path} is a folder; give the path of a SQLite file, e.g. {path / 'expbot.db'}"]
        if not path.exists():
            return []
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError as exc:
        return [f"EXPBOT_DB: {path} cannot be read ({exc.strerror or type(exc).__name__})"]
    if header and header != SQLITE_HEADER:
        return [f"EXPBOT_DB: {path} is not a SQLite database; give a new file name or an expbot database"]
    return []


def suggestion(key: str, known: Iterable[str]) -> str:
    """`; did you mean "channel"?` for the nearest known name, else the list of known names."""
    import difflib  # only a config with a mistake needs it: not loaded on a clean start (bench/ack_latency.py)

    names = list(known)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6) or difflib.get_close_matches(
        key.lower(), names, n=1, cutoff=0.6
    )
    if close:
        return f'; did you mean "{close[0]}"?'
    return f" (known: {', '.join(names)})" if names else ""


def section_tables(raw: dict[str, Any], where: str, keys: Mapping[str, Iterable[str]], problems: list[str]) -> None:
    """Top-level names: the known sections must be tables; anything else is unknown, with the nearest suggested."""
    for name, value in raw.items():
        if name in SECTIONS:
            if not isinstance(value, dict):
                problems.append(f"{where} {name}: must be a table ([{name}] followed by its keys)")
        elif isinstance(value, dict):
            problems.append(f"{where} [{name}]: unknown section{suggestion(name, SECTIONS)}")
        else:
            home = next((section for section, known in keys.items() if name in known), None)
            hint = f"; it belongs under [{home}]" if home else suggestion(name, SECTIONS)
            problems.append(f"{where} {name}: unknown key{hint}")


def model_problems(exc: ValidationError, where: str, section: str, model: type[BaseModel]) -> list[str]:
    """Pydantic errors as `<file> [section] key: what is wrong`; an unknown key names the nearest field."""
    found = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"])
        at = f"{where} [{section}] {loc}" if loc else f"{where} [{section}]"
        if error["type"] == "extra_forbidden":
            known = model.model_fields if len(error["loc"]) == 1 else ()
            found.append(f"{at}: unknown key{suggestion(loc, known)}")
        else:
            found.append(f"{at}: {error['msg'].removeprefix('Value error, ')}")
    return found


def table(raw: dict[str, Any], name: str) -> dict[str, Any]:
    """A section of the file (an empty one if it is missing or not a table; `section_tables` reported that)."""
    value = raw.get(name)
    return value if isinstance(value, dict) else {}


def validated(model: type[M], raw: dict[str, Any], where: str, section: str, problems: list[str]) -> M | None:
    """One section of the file as its model, or None with its problems added (every key named)."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems.extend(model_problems(exc, where, section, model))
        return None
