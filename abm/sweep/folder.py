"""A sweep folder's identity, its lock and the checks made before anything is written to it.

A folder is an abm sweep only if we can prove it: its ``manifest.json`` says ``"kind":
"abm-sweep"`` with a known ``"abm_output_schema"``, and every entry at its top level is one a
sweep (or ``abm analyze`` / ``abm plot``) writes. Nothing else is resumed into; ``abm run``
refuses such folders in turn. A symlink at a path the sweep writes or reads (``parts``, a part,
``manifest.json``, ...) is refused, so every write stays inside the folder.

One process writes a sweep at a time: :class:`SweepLock` holds an exclusive ``flock`` on
``SWEEP/.lock`` for the session (the kernel drops it when the process dies, however it dies). A
manifest that says "running" while nobody holds the lock belongs to a session that died: its
status is reported, and recorded at the next start, as "interrupted".
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
from pathlib import Path

from abm.config import ConfigError

SWEEP_KIND = "abm-sweep"
OUTPUT_SCHEMA = 1  # "abm_output_schema" of the folders this version writes
LOCK_NAME = ".lock"
# Every top-level entry a sweep folder may hold: what abm sweep writes, plus abm analyze's
# analysis/ and abm plot's default figures/ folder.
SWEEP_ENTRIES = frozenset(
    {
        "manifest.json",
        "experiment.toml",
        "design.csv",
        "parts",
        "failures",
        "runs.parquet",
        "timeseries.parquet",
        "agents.parquet",
        "analysis",
        "figures",
        LOCK_NAME,
    }
)
# Folders whose every entry the sweep reads or replaces: no symlink may sit among them.
WRITTEN_FOLDERS = ("parts", "failures", "analysis")
# abm.io.write_atomic's temp files (".<name>.<random>") left by a killed write.
_TEMP_RE = re.compile(r"\.(?P<name>[^/]+?)\.[A-Za-z0-9_]+(\.tmp)?$")
# A Dask scheduler address: tcp:// or tls://, a host name, IPv4 or [IPv6] address, and a port.
_SCHEDULER_RE = re.compile(
    r"(?P<proto>tcp|tls)://(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]+\])"
    r":(?P<port>[0-9]{1,5})"
)


def _short(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 120 else text[:60] + "..." + text[-57:]


def read_manifest(out_dir: str | Path) -> dict | None:
    """The manifest of an abm sweep folder, or None when ``out_dir`` is not one of ours.

    Ours: ``manifest.json`` is a regular file (not a symlink) holding a JSON object with
    ``"kind": "abm-sweep"`` and ``"abm_output_schema"`` equal to :data:`OUTPUT_SCHEMA` (sweeps
    written before the schema field existed have only the kind, and are accepted as schema 1)."""
    path = Path(out_dir) / "manifest.json"
    if path.is_symlink() or not path.is_file():
        return None
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read(64 * 1024 * 1024))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("kind") != SWEEP_KIND:
        return None
    if data.get("abm_output_schema", OUTPUT_SCHEMA) != OUTPUT_SCHEMA:
        return None
    return data


def foreign_entries(out_dir: Path) -> list[str]:
    """Top-level entries of ``out_dir`` that no sweep writes (sorted)."""
    out = []
    for entry in os.scandir(out_dir):
        temp = _TEMP_RE.fullmatch(entry.name)
        if entry.name in SWEEP_ENTRIES or (temp and temp["name"] in SWEEP_ENTRIES):
            continue
        out.append(entry.name)
    return sorted(out)


def symlinks_inside(out_dir: Path) -> list[str]:
    """Paths (relative to ``out_dir``) that are symlinks where the sweep reads or writes."""
    found = []
    for name in sorted(SWEEP_ENTRIES):
        if (out_dir / name).is_symlink():
            found.append(name)
    for folder in WRITTEN_FOLDERS:
        path = out_dir / folder
        if path.is_dir() and not path.is_symlink():
            for entry in os.scandir(path):
                if entry.is_symlink():
                    found.append(f"{folder}/{entry.name}")
                    break
    return found


def check_is_ours(out_dir: Path, option: str = "--out") -> dict:
    """The manifest of the sweep in ``out_dir``; ConfigError unless it is provably a sweep of
    ours with no foreign entry and no symlink where the sweep writes."""
    manifest = read_manifest(out_dir)
    where = _short(out_dir)
    if manifest is None:
        raise ConfigError(
            f"{option}: {where} exists, is not empty and is not an abm sweep; choose another folder"
        )
    foreign = foreign_entries(out_dir)
    if foreign:
        raise ConfigError(
            f"{option}: {where} holds {foreign[0]!r}, which no abm sweep writes; "
            "not resuming into it (move it away or choose another folder)"
        )
    links = symlinks_inside(out_dir)
    if links:
        raise ConfigError(
            f"{option}: {where}/{links[0]} is a symlink; a sweep folder must hold its own "
            "files (writes would leave the folder)"
        )
    return manifest


def lock_is_held(out_dir: Path) -> bool:
    """True when a live process holds the sweep's lock (checked without writing anything)."""
    try:
        fd = os.open(Path(out_dir) / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False  # no lock file (or not ours to open): nobody holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def effective_status(out_dir: Path, manifest: dict) -> str:
    """The manifest's status, with "running" read as "interrupted" when no process holds the
    lock (the session that wrote it died without updating it)."""
    status = str(manifest.get("status", "unknown"))
    if status == "running" and not lock_is_held(out_dir):
        return "interrupted"
    return status


class SweepLock:
    """An exclusive, non-blocking ``flock`` on ``SWEEP/.lock`` for one writing session.

    ``acquire`` raises ConfigError at once (exit code 2) when another process holds it."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> SweepLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ConfigError(f"--out: {_short(self.path)} is a symlink") from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"--out: another abm sweep is writing {_short(self.path.parent)} (its lock is "
                "held); wait for it to finish or choose another folder"
            ) from None
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self) -> SweepLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def check_scheduler_address(address: str, option: str = "--scheduler") -> str:
    """``address`` if it is ``tcp://host:port`` or ``tls://host:port`` with a port in
    [1, 65535]; ConfigError naming ``option`` otherwise (checked before anything is written)."""
    shown = repr(address) if len(address) <= 80 else repr(address[:77] + "...")
    match = _SCHEDULER_RE.fullmatch(address)
    if match is None:
        raise ConfigError(
            f"{option}: must look like tcp://HOST:PORT (or tls://HOST:PORT), got {shown}"
        )
    port = int(match["port"])
    if not 1 <= port <= 65535:
        raise ConfigError(f"{option}: port must be in [1, 65535], got {port}")
    return address
