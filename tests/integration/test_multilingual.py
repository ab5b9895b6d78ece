"""Chinese, Japanese and Spanish questions find their passages among English ones, over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from service.query.answering import NOT_FOUND
from tests.integration.corpus import DOCS, post_all

OTHERS = [
    {"id": "zh-fuji", "text": "富士山是日本最高的山，海拔三千七百七十六米，是一座活火山。"},
    {"id": "ja-tower", "text": "東京タワーは東京都港区芝公園にある電波塔です。高さは333メートル。"},
    {
        "id": "es-volcan",
        "text": "El Popocatépetl es un volcán activo que está cerca de la Ciudad de México.",
    },
    {
        "id": "es-set",
        "text": "La masa madre se alimenta con harina y agua todos los días.",
        "metadata": {"language": "es"},
    },
]


@pytest.fixture
def loaded(server: Any) -> Any:
    post_all(server, [*DOCS, *OTHERS])
    return server


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("富士山有多高？", "zh-fuji"),
        ("富士山", "zh-fuji"),
        ("東京タワーの高さは？", "ja-tower"),
        ("¿Qué volcán está cerca de la Ciudad de México?", "es-volcan"),
        ("¿Con qué se alimenta la masa madre?", "es-set"),
        ("Which volcano in Sicily is most active?", "volcano"),
    ],
)
def test_a_question_finds_its_passage_and_is_answered(
    loaded: Any, question: str, expected: str
) -> None:
    with loaded.client() as c:
        results = c.post("/v1/search", json={"query": question}).json()["results"]
        answer = c.post("/v1/query", json={"question": question}).json()
    assert results[0]["document_id"] == expected
    assert answer["answer"] != NOT_FOUND and answer["sources"][0]["document_id"] == expected


def test_language_can_be_set_and_must_be_known(loaded: Any) -> None:
    with loaded.client() as c:
        set_es = c.post("/v1/search", json={"query": "volcanes activos", "language": "es"})
        unknown = c.post("/v1/search", json={"query": "volcán", "language": "klingon"})
        unrelated = c.post("/v1/query", json={"question": "长城有多长？"}).json()
    assert set_es.json()["results"][0]["document_id"] == "es-volcan"
    assert unknown.status_code == 422 and "klingon" in unknown.json()["detail"]
    assert unrelated["answer"] == NOT_FOUND
