"""A small hand-written corpus for the API tests (tests never read ../shared)."""

from __future__ import annotations

from typing import Any

DOCS: list[dict[str, Any]] = [
    {
        "id": "volcano",
        "title": "Volcanoes",
        "source": "https://example.org/volcano",
        "metadata": {"topic": "geology", "year": 2019, "rating": 4.5, "public": True},
        "text": (
            "A volcano is a rupture in the crust of a planet.\n\n"
            "Magma rises through the vent and erupts as lava. "
            "Mount Etna in Sicily is one of the most active volcanoes in the world."
        ),
    },
    {
        "id": "glacier",
        "title": "Glaciers",
        "metadata": {"topic": "geology", "year": 2021, "rating": 3.0, "public": False},
        "text": (
            "A glacier is a persistent body of dense ice that moves under its own weight.\n\n"
            "Glaciers carve valleys; the Aletsch glacier is the largest in the Alps."
        ),
    },
    {
        "id": "sourdough",
        "title": "Sourdough",
        "metadata": {"topic": "baking", "year": 2023, "rating": 5, "public": True},
        "text": (
            "Sourdough bread rises with a culture of wild yeast and lactic acid bacteria. "
            "The starter is fed flour and water every day."
        ),
    },
]


def post_all(live: Any, docs: list[dict[str, Any]] = DOCS, **extra: Any) -> None:
    with live.client() as c:
        r = c.post("/v1/documents/batch", json={"documents": [{**d, **extra} for d in docs]})
        assert r.status_code == 202, r.text
        for accepted in r.json()["documents"]:
            assert live.wait_job(accepted["job_id"])["status"] == "completed"
