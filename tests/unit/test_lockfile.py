"""The lock files agree with pyproject.toml (CI fails here when they do not)."""

from __future__ import annotations

from tests.lockfile import LOCKS, lock_path, pins, problems


def test_the_locks_were_made_from_this_pyproject() -> None:
    assert [p for name in LOCKS for p in problems(name)] == []


def test_the_dev_lock_pins_the_runtime_versions() -> None:
    runtime = pins(lock_path("runtime").read_text())
    dev = pins(lock_path("dev").read_text())
    assert {n: v for n, v in runtime.items() if dev.get(n) != v} == {}


def test_every_pin_has_a_hash() -> None:
    for name in LOCKS:
        blocks = lock_path(name).read_text().split("\n")
        pinned = [i for i, line in enumerate(blocks) if "==" in line and not line.startswith("#")]
        for i in pinned:
            assert "--hash=sha256:" in blocks[i + 1], (name, blocks[i])
