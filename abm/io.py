"""Writing a run's results: tables, network, figure and a manifest, atomically.

Everything is first written into a temporary sibling folder; only when every file is complete does it
replace the destination, so a crash never leaves half a result and never destroys an earlier one. An
existing destination is replaced only if it is an earlier ``abm`` result (it has a manifest.json).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import networkx as nx

from abm.config import ConfigError

RUN_FILES = (
    "cascade.json",
    "timeseries.csv",
    "agents.csv",
    "events.csv",
    "network.graphml",
    "overview.png",
    "manifest.json",
)
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
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_destination(out_dir: Path) -> None:
    """Refuse to replace a folder that is not an earlier abm result (exit code 2 via ConfigError)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out: {out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "manifest.json").exists():
        raise ConfigError(
            f"--out: {out_dir} exists, is not empty and is not an abm result; choose another folder"
        )


def _graphml_safe(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    g = graph.copy()
    for _, data in g.nodes(data=True):
        for key, value in list(data.items()):
            if value is None:
                del data[key]
    for *_, data in g.edges(data=True, keys=True):
        for key, value in list(data.items()):
            if value is None:
                del data[key]
    return g


def write_run(result, out_dir: str | Path, figure: Callable[..., object] | None = None) -> Path:
    """Write every output of ``result`` (an :class:`abm.RunResult`) to ``out_dir`` atomically.

    ``figure``, when given, is called as ``figure(result, path)`` to draw ``overview.png`` (the CLI
    passes :func:`abm.viz.overview.overview_figure`); ``None`` or ``False`` writes no figure. The
    writer is passed in so that this module does not import the plotting package.
    """
    if figure is not None and figure is not False and not callable(figure):
        raise TypeError(f"figure: expected a figure writer f(result, path) or None, got {figure!r}")
    out_dir = Path(out_dir)
    check_destination(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        result.timeseries.to_csv(tmp / "timeseries.csv", index=False)
        result.agents.to_csv(tmp / "agents.csv", index=False)
        result.events.to_csv(tmp / "events.csv", index=False)
        nx.write_graphml(_graphml_safe(result.network), tmp / "network.graphml")
        with open(tmp / "cascade.json", "w") as fh:
            json.dump(result.cascade_metrics(), fh, indent=2, sort_keys=True)
            fh.write("\n")
        if callable(figure):
            figure(result, tmp / "overview.png")
        manifest = dict(result.manifest)
        manifest["versions"] = versions()
        manifest["git_commit"] = git_commit()
        manifest["files"] = {
            p.name: sha256(p) for p in sorted(tmp.iterdir()) if p.name != "manifest.json"
        }
        with open(tmp / "manifest.json", "w") as fh:
            json.dump(manifest, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _replace_dir(new: Path, dest: Path) -> None:
    """Swap ``new`` into place of ``dest`` with renames (the old result survives until the swap)."""
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
        try:
            os.replace(new, dest)
        except BaseException:
            os.replace(old, dest)
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
            json.dump(data, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
