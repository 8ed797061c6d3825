"""Writing a run's results: tables, network, figure and a manifest, atomically.

Everything is first written into a temporary sibling folder; only when every file is complete does it
replace the destination, so a crash never leaves half a result and never destroys an earlier one.

A folder is ours only if we can prove it (:func:`owned_output`): its manifest.json names its kind
and layout version and lists every file in it with its sha256. ``abm run`` replaces only such a run
folder, an empty folder or nothing (:func:`check_destination`, called before the model runs); a
kill mid-write leaves a hidden temp folder with our marker, removed at the next write there.
(Over 450 lines because writing and the ownership rules that guard every write belong together.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from abm.config import ConfigError
from abm.network import write_graphml

RUN_FILES = (
    "cascade.json",
    "timeseries.csv",
    "agents.csv",  # agents.parquet instead when the panel has more than AGENTS_CSV_MAX_ROWS rows
    "events.csv",
    "network.graphml",
    "overview.png",
    "manifest.json",
)
# Above this many rows (agent-months) the agent panel is written as agents.parquet (columnar,
# compressed) instead of agents.csv: a 100,000-agent, 60-month run has 6 M rows, which CSV writes
# in about a minute and a gigabyte; Parquet in a few seconds and a fraction of the size.
AGENTS_CSV_MAX_ROWS = 2_000_000
RUN_KIND = "abm-run"  # manifest.json "kind" of a run folder
SWEEP_KIND = "abm-sweep"  # ... of a sweep folder (written by abm.sweep.runner)
FIGURES_KIND = "abm-figures"  # ... of a figures folder (written by abm plot)
FIGURES_DIR = "figures"  # abm plot's default folder inside a run or sweep
CALIBRATION_KIND = "abm-calibration"  # ... of a calibration report (abm.calibration_report)
OWNED_KINDS = {
    RUN_KIND: "run",
    CALIBRATION_KIND: "calibration",
    FIGURES_KIND: "figures",
}  # folders listing every file
SCHEMA_KEY = "abm_output_schema"
OUTPUT_SCHEMA = 1  # version of the run folder layout; raise it when the files or manifest change
LEGACY_RUN_KEYS = ("seed", "config", "scenario")  # a run manifest from before "kind" existed
MANIFEST = "manifest.json"
STAGING_MARKER = ".abm-staging"  # inside a temp folder while it is written: whose it is
MAX_MANIFEST_BYTES = 64 << 20
MAX_NAME_BYTES = 255  # NAME_MAX of Linux and macOS file systems
MAX_PATH_BYTES = 4000  # below PATH_MAX (4096)
MAX_OUT_NAME_BYTES = 200  # leaves room for ".NAME.tmp-PID-XXXXXXXX" beside it
PACKAGES = ("abm", "mesa", "numpy", "pandas", "networkx", "matplotlib", "tqdm")


def versions(extra: tuple[str, ...] = ()) -> dict:
    """Python and the installed versions of ``PACKAGES`` and ``extra`` (None when not installed)."""
    out = {"python": platform.python_version()}
    for name in (*PACKAGES, *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The commit of the source tree the package runs from, if it is a git checkout."""
    return provenance()["git_commit"]


def _checkout_root(package_dir: Path) -> Path | None:
    """The git checkout holding ``package_dir`` (the nearest parent with a ``.git`` entry, a
    folder or a worktree's file), or None for an installed copy (site-packages has none)."""
    for folder in (package_dir, *package_dir.parents):
        if (folder / ".git").exists():
            return folder
    return None


def _git(root: Path, *args: str) -> bytes | None:
    try:
        out = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(root), *args],
            capture_output=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def provenance() -> dict:
    """Which code wrote an output: version, git commit and whether the checkout was modified.

    Keys: ``abm_version`` (``abm.__version__`` of the imported code), ``abm_installed_version``
    (the installed distribution's version, None when not installed), ``git_commit`` (HEAD of the checkout holding the package), ``git_dirty``
    (True when a tracked file of the checkout differs from HEAD or an untracked, not ignored
    file lies under the package folder) and ``git_diff_sha256`` (when dirty: sha256 of
    ``git diff HEAD --binary`` followed by the name and content of each such untracked file, so
    two outputs with the same hash ran the same modified code). The git fields are None for an
    installed (non-editable) copy or without git. At most two git calls (5 s time-out each).
    """
    import abm

    package_dir = Path(abm.__file__).resolve().parent
    try:
        installed = metadata.version("abm")
    except metadata.PackageNotFoundError:
        installed = None
    out = {
        "abm_version": abm.__version__,
        "abm_installed_version": installed,
        "git_commit": None,
        "git_dirty": None,
        "git_diff_sha256": None,
    }
    root = _checkout_root(package_dir)
    status = (
        None
        if root is None
        else _git(root, "status", "--porcelain=v2", "--branch", "-z", "--untracked-files=all")
    )
    if status is None:
        return out
    entries = [e.decode("utf-8", "surrogateescape") for e in status.split(b"\0") if e]
    for entry in entries:
        if entry.startswith("# branch.oid ") and entry[13:] != "(initial)":
            out["git_commit"] = entry[13:]
    package_rel = package_dir.relative_to(root).as_posix() + "/"
    changed = [e for e in entries if e[0] in "12u"]
    untracked = sorted(
        e[2:] for e in entries if e.startswith("? ") and e[2:].startswith(package_rel)
    )
    out["git_dirty"] = bool(changed or untracked)
    if out["git_dirty"]:
        diff = _git(root, "diff", "HEAD", "--binary")
        h = hashlib.sha256(diff if diff is not None else b"<git diff failed>")
        for name in untracked:
            h.update(b"\0" + name.encode("utf-8", "surrogateescape") + b"\0")
            with contextlib.suppress(OSError):
                h.update(hashlib.sha256((root / name).read_bytes()).digest())
        out["git_diff_sha256"] = h.hexdigest()
    return out


def _top_level_sorted(data: dict) -> dict:
    """``data`` with its own keys sorted and every nested table in its order: a scenario's order is
    part of the run (generations, lender and buyer kinds are built in file order), so a manifest's
    config must keep it for ``abm reproduce`` (``sort_keys`` would sort them alphabetically)."""
    return {key: data[key] for key in sorted(data)}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- whose folder is it


def _read_manifest_file(folder: Path) -> dict | None:
    """The JSON object in ``folder/manifest.json`` if it is a regular file (not a link), else None."""
    path = folder / MANIFEST
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_MANIFEST_BYTES:
            return None
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _run_contents_problem(folder: Path, manifest: dict) -> str | None:
    """Why ``folder`` is not exactly the files its run manifest lists (None when it is): every entry
    must be listed, be a regular file (no links, no sub-folders) and have the recorded sha256."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        return "its manifest.json has no list of the files it wrote"
    listed = set(files) | {MANIFEST}
    present = set(os.listdir(folder))
    extra = sorted(present - listed)
    if FIGURES_DIR in extra and owned_output(folder / FIGURES_DIR) == "figures":
        extra.remove(FIGURES_DIR)  # abm plot's figures of this run: provably ours too
    if extra:
        shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
        hint = " (figures/ was changed after abm plot wrote it)" if FIGURES_DIR in extra else ""
        return f"it holds {shown}, which its manifest.json does not list{hint}"
    missing = sorted(listed - present)
    if missing:
        return f"{missing[0]}, listed in its manifest.json, is missing"
    for name, digest in sorted(files.items()):
        path = folder / name
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return f"{name} is a link or a folder, not a file abm wrote"
        if sha256(path) != digest:
            return f"{name} was changed after abm wrote it"
    return None


def _ownership(folder: Path) -> tuple[str | None, str]:
    """(``"run"`` / ``"calibration"`` / ``"sweep"`` / None, the reason in words) for an existing,
    non-empty folder. A run and a calibration report must hold exactly the files they list."""
    manifest = _read_manifest_file(folder)
    if manifest is None:
        return None, "it has no readable abm manifest.json"
    kind = manifest.get("kind")
    if kind == SWEEP_KIND:
        return "sweep", "it is an abm sweep"
    if kind in OWNED_KINDS:
        if manifest.get(SCHEMA_KEY) != OUTPUT_SCHEMA:
            return (
                None,
                f"its manifest.json has {SCHEMA_KEY} {manifest.get(SCHEMA_KEY)!r}, not {OUTPUT_SCHEMA}",
            )
    elif kind is not None:
        return None, f"its manifest.json is of kind {kind!r}, not {RUN_KIND!r}"
    elif not all(key in manifest for key in LEGACY_RUN_KEYS):
        return None, "its manifest.json was not written by abm"
    problem = _run_contents_problem(folder, manifest)
    owner = OWNED_KINDS.get(kind, "run")
    return (None, problem) if problem else (owner, f"it is an abm {owner}")


def owned_output(path: str | Path) -> str | None:
    """``"run"``, ``"calibration"``, ``"figures"`` or ``"sweep"`` if ``path`` is a folder that abm
    provably wrote, else None.

    A run is a real folder (not a link) whose ``manifest.json`` says ``kind = "abm-run"`` with
    ``abm_output_schema = 1`` - or, for runs written before those keys existed, has ``seed``,
    ``config`` and ``scenario`` - and which holds exactly the files its manifest lists, as regular
    files with the sha256 it records, plus the manifest. A sweep is a folder whose manifest says
    ``kind = "abm-sweep"``; what a sweep may hold is for :mod:`abm.sweep` to check. A figures
    folder (``kind = "abm-figures"``, written by :func:`record_figures`) holds exactly the files its
    manifest lists; a run may hold one as ``figures/``.
    """
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return None
    try:
        return _ownership(path)[0]
    except OSError:
        return None


# ----------------------------------------------------------------------------- destinations


def _nearest_existing(path: Path) -> Path:
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _probe_create(folder: Path, option: str) -> None:
    """Create ``folder``'s missing parents and a temp folder beside it, then remove all of them:
    the only sure test that we can write there (``os.access`` says yes to root in /proc and /sys)."""
    created: list[Path] = []
    try:
        missing = []
        parent = folder.parent
        while not os.path.lexists(parent):
            missing.append(parent)
            parent = parent.parent
        for path in reversed(missing):
            os.mkdir(path)
            created.append(path)
        created.append(Path(tempfile.mkdtemp(prefix=f".{folder.name}.probe-", dir=folder.parent)))
    except OSError as exc:
        where = Path(exc.filename).parent if exc.filename else folder.parent
        raise ConfigError(
            f"{option}: cannot create a folder in {where}: {exc.strerror or exc}"
        ) from None
    finally:
        for path in reversed(created):
            with contextlib.suppress(OSError):
                os.rmdir(path)


def check_writable_folder(folder: str | Path, option: str = "--out", probe: bool = True) -> Path:
    """Refuse a folder argument we could not write into (empty, control characters, a name or path
    too long, under a file, read-only or not creatable); returns it as a Path. With ``probe``, tries
    to create the folder (and its missing parents) and a temp folder in it, then removes them."""
    text = os.fspath(folder)
    if text == "":
        raise ConfigError(f"{option}: must not be empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConfigError(f"{option}: {text!r} contains control characters")
    try:
        encoded = os.fsencode(text)
    except UnicodeError:
        raise ConfigError(f"{option}: {text!r} cannot be encoded as a file name") from None
    if len(encoded) > MAX_PATH_BYTES:
        raise ConfigError(f"{option}: path is {len(encoded)} bytes long; at most {MAX_PATH_BYTES}")
    path = Path(text)
    for part in path.parts:
        if len(os.fsencode(part)) > MAX_NAME_BYTES:
            raise ConfigError(
                f"{option}: name {part[:40]!r}... is {len(os.fsencode(part))} bytes long; "
                f"at most {MAX_NAME_BYTES}"
            )
    existing = _nearest_existing(Path(os.path.abspath(text)))
    if os.path.lexists(existing) and not existing.is_dir():
        what = "a broken symbolic link" if os.path.islink(existing) else "a file"
        raise ConfigError(f"{option}: {existing} is {what}, not a folder")
    try:
        read_only = os.statvfs(existing).f_flag & os.ST_RDONLY
    except OSError:
        read_only = False
    if read_only:
        raise ConfigError(f"{option}: cannot write in {existing}: read-only file system")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{option}: cannot write in {existing}: permission denied")
    if probe:
        _probe_create(Path(os.path.abspath(text)) / ".abm-probe", option)
    return path


def check_destination(out_dir: str | Path, option: str = "--out", kind: str = "run") -> Path:
    """Refuse a destination that is not provably ours, before anything runs; creates nothing.

    Accepted: a folder that does not exist yet (its parents may not exist either), an empty folder,
    or an earlier result of the same ``kind`` (:func:`owned_output` is ``kind``: ``"run"`` for
    ``abm run``, ``"calibration"`` for ``abm calibration``). Refused with a
    :class:`ConfigError` naming ``option``: an empty name, ``.``/``..`` or any folder holding the
    current one, a symbolic link, a mount point, a file, a sweep, a folder with a foreign
    ``manifest.json`` or with files its manifest does not list, a name over
    ``MAX_OUT_NAME_BYTES`` bytes, a path under a file, a read-only place, and any place where
    a folder cannot be created (tried by creating and removing a temp folder beside it).
    """
    path = check_writable_folder(out_dir, option, probe=False)
    text = os.fspath(out_dir)
    absolute = Path(os.path.abspath(text))
    if path.name in ("", ".", "..") or absolute == absolute.parent:
        raise ConfigError(f"{option}: {text!r} is not a folder name; give one, e.g. results/mine")
    try:
        cwd = Path.cwd()
    except OSError:
        cwd = None
    if cwd is not None and (absolute == cwd or absolute in cwd.parents):
        raise ConfigError(f"{option}: {text} is or holds the current folder; choose another one")
    name_bytes = len(os.fsencode(path.name))
    if name_bytes > MAX_OUT_NAME_BYTES:
        raise ConfigError(
            f"{option}: folder name is {name_bytes} bytes long; at most {MAX_OUT_NAME_BYTES} "
            "(the temp folder beside it needs the rest)"
        )
    if os.path.islink(path):
        raise ConfigError(
            f"{option}: {text} is a symbolic link (to {os.readlink(path)}); give the folder "
            "itself or another name - abm does not replace links"
        )
    if os.path.lexists(path):
        if not path.is_dir():
            raise ConfigError(f"{option}: {text} exists and is not a folder")
        if os.path.ismount(path):
            raise ConfigError(f"{option}: {text} is a mount point; give a folder inside it")
        try:
            entries = os.listdir(path)
            found, reason = _ownership(path) if entries else (kind, "empty")
        except OSError as exc:
            raise ConfigError(f"{option}: cannot read {text}: {exc.strerror or exc}") from None
        if found == "sweep":
            raise ConfigError(
                f"{option}: {text} is an abm sweep; a {kind} never replaces a sweep, "
                "choose another folder"
            )
        if found != kind:
            raise ConfigError(
                f"{option}: {text} is not empty and not an abm {kind} result ({reason}); "
                "abm replaces only its own results - choose another folder"
            )
        if entries and not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"{option}: cannot replace {text}: permission denied")
    _probe_create(absolute, option)
    return path


def check_figures_destination(folder: str | Path, option: str = "--out") -> Path:
    """Refuse a figures folder that is not provably ours: it must be new, empty, or a folder that
    ``abm plot`` wrote (its manifest lists every file in it, unchanged), so that no file a user
    owns is overwritten by a figure of the same name."""
    path = check_writable_folder(folder, option)
    if os.path.islink(path):
        raise ConfigError(f"{option}: {path} is a symbolic link; give the folder itself")
    if path.is_dir() and os.listdir(path):
        kind, reason = _ownership(path)
        if kind != "figures":
            raise ConfigError(
                f"{option}: {path} is not empty and not a figures folder abm plot wrote ({reason}); "
                "choose another folder"
            )
    return path


def record_figures(folder: str | Path, written: list[Path], source: dict | None = None) -> Path:
    """Write ``folder/manifest.json`` (kind ``abm-figures``) listing, with sha256, the files just
    ``written`` there and the files an earlier manifest of this folder listed that are still
    unchanged; ``source`` (e.g. the run or sweep it was drawn from) is recorded as given."""
    folder = Path(folder)
    earlier = _read_manifest_file(folder) or {}
    files = {}
    if earlier.get("kind") == FIGURES_KIND and isinstance(earlier.get("files"), dict):
        for name, digest in earlier["files"].items():
            path = folder / str(name)
            if path.is_file() and not path.is_symlink() and sha256(path) == digest:
                files[name] = digest
    for path in written:
        path = Path(path)
        if path.parent.resolve() == folder.resolve():
            files[path.name] = sha256(path)
    manifest = {
        "kind": FIGURES_KIND,
        SCHEMA_KEY: OUTPUT_SCHEMA,
        "source": source or {},
        "files": dict(sorted(files.items())),
    }
    write_json_atomic(manifest, folder / MANIFEST)
    return folder / MANIFEST


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` may still run (True when unsure: only dead owners are cleaned up)."""
    if os.name != "posix" or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True
    return True


def _new_staging(dest: Path, role: str) -> Path:
    """A new hidden ``.NAME.tmp-PID-XXXXXXXX`` folder beside ``dest`` with our marker file inside."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{role}-{os.getpid()}-", dir=dest.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    _write_marker(tmp)
    return tmp


def _write_marker(folder: Path) -> None:
    marker = {"pid": os.getpid(), "host": socket.gethostname(), "created_at": time.time()}
    with open(folder / STAGING_MARKER, "w") as fh:
        json.dump(marker, fh)


def _stale_staging_is_ours(folder: Path, pid: int) -> bool:
    if folder.is_symlink() or not folder.is_dir() or pid == os.getpid() or _pid_alive(pid):
        return False
    try:
        marker = json.loads((folder / STAGING_MARKER).read_text())
    except (OSError, ValueError):
        marker = None
    if isinstance(marker, dict):
        return marker.get("pid") == pid and marker.get("host") == socket.gethostname()
    # killed after the marker was removed (a complete new run) or before it was written (an old one)
    return owned_output(folder) in OWNED_KINDS.values()


def remove_stale_staging(dest: str | Path) -> list[Path]:
    """Remove the ``.NAME.tmp-PID-*`` / ``.NAME.old-PID-*`` folders a killed write to ``dest`` left
    beside it, and only those provably ours: our name pattern, a dead owner process, and our marker
    file (same pid and host) inside - or, without a marker, a complete abm run or calibration
    report. Returns them."""
    dest = Path(dest)
    pattern = re.compile(rf"\.{re.escape(dest.name)}\.(?:tmp|old)-(\d{{1,10}})-[a-z0-9_]+")
    removed = []
    try:
        names = os.listdir(dest.parent)
    except OSError:
        return removed
    for name in sorted(names):
        match = pattern.fullmatch(name)
        if match and _stale_staging_is_ours(dest.parent / name, int(match.group(1))):
            shutil.rmtree(dest.parent / name, ignore_errors=True)
            removed.append(dest.parent / name)
    return removed


def write_run(result, out_dir: str | Path, figure: Callable[..., object] | None = None) -> Path:
    """Write every output of ``result`` (an :class:`abm.RunResult`) to ``out_dir`` atomically
    (:func:`write_owned_folder`, kind ``abm-run``: new, empty or an earlier abm run).

    ``figure``, when given, is called as ``figure(result, path)`` to draw ``overview.png`` (the CLI
    passes :func:`abm.viz.overview.overview_figure`); ``None`` or ``False`` writes no figure. The
    writer is passed in so that this module does not import the plotting package.
    """
    if figure is not None and figure is not False and not callable(figure):
        raise TypeError(f"figure: expected a figure writer f(result, path) or None, got {figure!r}")

    def cascade(path: Path) -> None:
        with open(path, "w") as fh:
            json.dump(result.cascade_metrics(), fh, indent=2, sort_keys=True)
            fh.write("\n")

    writers = {
        "timeseries.csv": lambda path: result.timeseries.to_csv(path, index=False),
        agents_file_name(len(result.agents)): lambda path: _write_agents(result.agents, path),
        "events.csv": lambda path: result.events.to_csv(path, index=False),
        # streamed: the bytes of nx.write_graphml without None attributes, in bounded memory
        "network.graphml": lambda path: write_graphml(result.network, path),
        "cascade.json": cascade,
    }
    if callable(figure):
        writers["overview.png"] = lambda path: figure(result, path)
    return write_owned_folder(out_dir, writers, dict(result.manifest), RUN_KIND)


def agents_file_name(rows: int) -> str:
    """The agent panel's file in a run folder: ``agents.csv``, or ``agents.parquet`` when the
    panel has more than ``AGENTS_CSV_MAX_ROWS`` rows (agent-months)."""
    return "agents.parquet" if rows > AGENTS_CSV_MAX_ROWS else "agents.csv"


def _write_agents(agents, path: Path) -> None:
    if path.suffix == ".parquet":
        agents.to_parquet(path, index=False)  # pyarrow: already a dependency (sweep results)
        # pyarrow's allocator keeps the freed conversion buffers (~0.2 GB at 6 M rows) for later
        # use; hand them back before the next files are written
        import pyarrow

        pyarrow.default_memory_pool().release_unused()
    else:
        agents.to_csv(path, index=False)


def write_owned_folder(
    out_dir: str | Path, writers: dict[str, Callable[[Path], object]], manifest: dict, kind: str
) -> Path:
    """Write a folder of ``kind`` (a key of ``OWNED_KINDS``: ``"abm-run"``, ``"abm-calibration"``,
    ...) atomically, the one writer of the folders abm owns.

    ``writers`` maps each file name to a function that writes that file at the path it is given;
    ``manifest`` is completed with ``kind``, ``abm_output_schema``, the versions, the provenance
    (version, git commit, modified flag) and the sha256 of every file. The destination must pass
    :func:`check_destination` for this kind; the files go to a hidden temp folder (with our marker)
    that replaces ``out_dir`` in one rename, and on any error nothing is replaced. Temp folders
    left by killed earlier writes to ``out_dir`` are removed afterwards.
    """
    if kind not in OWNED_KINDS:
        raise ValueError(f"kind: one of {sorted(OWNED_KINDS)}, got {kind!r}")
    out_dir = Path(out_dir)
    check_destination(out_dir, kind=OWNED_KINDS[kind])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_staging(out_dir, "tmp")
    try:
        for name, write in writers.items():
            write(tmp / name)
        manifest = {**manifest, "kind": kind, SCHEMA_KEY: OUTPUT_SCHEMA, "versions": versions()}
        manifest["provenance"] = provenance()
        manifest["git_commit"] = manifest["provenance"]["git_commit"]
        manifest["files"] = {name: sha256(tmp / name) for name in sorted(writers)}
        with open(tmp / MANIFEST, "w") as fh:
            json.dump(_top_level_sorted(manifest), fh, indent=2, default=str)
            fh.write("\n")
        (tmp / STAGING_MARKER).unlink()
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    remove_stale_staging(out_dir)
    return out_dir


def _replace_dir(new: Path, dest: Path) -> None:
    """Swap ``new`` into place of ``dest`` with renames (the old result survives until the swap)."""
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
        os.replace(dest, old)
        with contextlib.suppress(OSError):  # full disk: still recognisable as a complete run
            _write_marker(old)
        try:
            os.replace(new, dest)
        except BaseException:
            os.replace(old, dest)
            (dest / STAGING_MARKER).unlink(missing_ok=True)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, dest)


def sibling_temp(path: str | Path, suffix: str = "") -> Path:
    """A new empty temp file next to ``path`` (same file system, so ``os.replace`` is atomic), with
    the permissions an ordinary new file gets (``mkstemp`` alone would make it owner-only)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    return Path(tmp)


def write_atomic(path: str | Path, write, suffix: str = "") -> Path:
    """Call ``write(tmp)`` on a sibling temp file, then move it onto ``path`` in one rename; on any
    error the temp file is removed and ``path`` is untouched."""
    path = Path(path)
    tmp = sibling_temp(path, suffix)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(data: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = sibling_temp(path)
    try:
        with open(tmp, "w") as fh:
            json.dump(_top_level_sorted(data), fh, indent=2, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
