"""Store fixtures: every contract test runs against each `VectorStore` implementation."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.store.base import VectorStore
from service.store.edge import EdgeStore
from service.store.qdrant import QdrantStore

QDRANT_IMAGE = "qdrant/qdrant:v1.19.1"  # scoped IDF (`params.idf.corpus`) needs >= 1.19

_LOCAL = ":memory:"

StoreFactory = Callable[..., VectorStore]


@pytest.fixture(scope="session")
def qdrant_server_url() -> Iterator[str]:
    """URL of a throwaway Qdrant server, or a skip when no Docker engine answers."""
    import docker
    from docker.errors import DockerException

    socket_path = Path("/var/run/docker.sock")
    if "DOCKER_HOST" not in os.environ and not socket_path.exists():
        # Checked first: docker-py leaks the socket of a failed connection attempt.
        pytest.skip(f"no Docker engine: {socket_path} does not exist and DOCKER_HOST is unset")
    try:
        client = docker.from_env()
    except DockerException as exc:
        pytest.skip(f"no Docker engine: {exc}")
    try:
        client.ping()
    except DockerException as exc:
        pytest.skip(f"no Docker engine: {exc}")
    finally:
        client.close()
    from testcontainers.community.qdrant import QdrantContainer

    with QdrantContainer(image=QDRANT_IMAGE) as container:
        yield f"http://{container.rest_host_address}"


KINDS = ["edge", "qdrant-memory", "qdrant-server"]


def open_store(
    request: pytest.FixtureRequest, kind: str, path: Path, dense_dim: int | None = None
) -> VectorStore:
    """A fresh, empty store of `kind` (an Edge shard at `path`, or a new Qdrant collection)."""
    if kind == "edge":
        return EdgeStore(path, dense_dim=dense_dim)
    url = request.getfixturevalue("qdrant_server_url") if kind == "qdrant-server" else _LOCAL
    # One collection per store: server tests share the container.
    return QdrantStore(url, dense_dim=dense_dim, collection_name=f"t_{uuid.uuid4().hex}")


@pytest.fixture(params=KINDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Factory `make_store(dense_dim=None)`; every store it made is closed after the test."""
    made: list[VectorStore] = []

    def factory(dense_dim: int | None = None) -> VectorStore:
        made.append(open_store(request, request.param, tmp_path / f"shard-{len(made)}", dense_dim))
        return made[-1]

    yield factory
    for store in made:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> VectorStore:
    return make_store()
