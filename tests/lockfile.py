"""The lock files: `requirements/runtime.lock` (what `make run` and the Dockerfile install) and
`requirements/dev.lock` (what `make test` installs), pinned with hashes by `uv pip compile`.

`python -m tests.lockfile` writes both (`make lock`); `check()` (run by
`tests/unit/test_lockfile.py`, so by `make test` and CI) fails when `pyproject.toml` and the
locks disagree: each lock records a hash of the dependencies it was made from, and every
dependency must be pinned at a version its specifier allows.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCKS = {"runtime": (), "dev": ("dev",)}  # lock name -> extras it includes
_SOURCE = re.compile(r"^# pyproject-dependencies-sha256: ([0-9a-f]{64})$", re.MULTILINE)
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)(?:\s*;\s*([^\\]+?))?\s*\\?$", re.MULTILINE)


def lock_path(name: str) -> Path:
    return ROOT / "requirements" / f"{name}.lock"


def requirements(extras: tuple[str, ...]) -> list[str]:
    """The dependencies, the extras' and the build backend (citeline itself is built with it,
    without build isolation, so that it too comes from the lock)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    found = [*project["dependencies"], *pyproject["build-system"]["requires"]]
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        seen.add(extra)
        for spec in project["optional-dependencies"][extra]:
            req = Requirement(spec)
            if canonicalize_name(req.name) == canonicalize_name(project["name"]):
                todo += [e for e in req.extras if e not in seen]  # citeline[otel]: its extra
            else:
                found.append(spec)
    return found


def source_hash(extras: tuple[str, ...]) -> str:
    return hashlib.sha256(json.dumps(sorted(requirements(extras))).encode()).hexdigest()


def pins(text: str) -> dict[str, tuple[str, str | None]]:
    """name -> (version, marker) of every pin in a lock."""
    return {canonicalize_name(m[1]): (m[2], m[3]) for m in _PIN.finditer(text)}


def problems(name: str) -> list[str]:
    """What is wrong with one lock, in words a developer can act on."""
    extras = LOCKS[name]
    path = lock_path(name)
    if not path.exists():
        return [f"{path.name} is missing: run `make lock`"]
    text = path.read_text()
    recorded = _SOURCE.search(text)
    out = []
    if recorded is None or recorded.group(1) != source_hash(extras):
        out.append(f"{path.name} was not made from this pyproject.toml: run `make lock`")
    pinned = pins(text)
    env = default_environment() | {"extra": ""}
    for spec in requirements(extras):
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        version = pinned.get(canonicalize_name(req.name))
        if version is None:
            out.append(f"{path.name} does not pin {req.name}")
        elif not req.specifier.contains(version[0], prereleases=True):
            out.append(f"{path.name} pins {req.name}=={version[0]}, outside {req.specifier}")
    return out


def write() -> None:
    build = ROOT / "requirements" / "build.in"
    build.parent.mkdir(exist_ok=True)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    build.write_text("\n".join(pyproject["build-system"]["requires"]) + "\n")
    for name, extras in LOCKS.items():
        args = [sys.executable, "-m", "uv", "pip", "compile", "pyproject.toml", str(build)]
        args += ["--quiet"]
        args += ["--generate-hashes", "--universal", "--python-version", "3.11", "--no-header"]
        args += [f"--extra={e}" for e in extras]
        if name != "runtime":  # the same versions as the runtime lock, plus the dev tools
            args += ["--constraint", str(lock_path("runtime"))]
        body = subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True).stdout
        header = (
            f"# {name} dependencies of citeline, pinned with hashes: `make lock` rewrites this.\n"
            f"# pyproject-dependencies-sha256: {source_hash(extras)}\n"
        )
        lock_path(name).write_text(header + body)
    build.unlink()


if __name__ == "__main__":
    write()
    bad = [p for name in LOCKS for p in problems(name)]
    sys.exit("\n".join(bad) if bad else 0)
