"""Language analysis: detection from stopwords, per-language stemmers, CJK bigrams."""

from __future__ import annotations

import pytest

from service.embeddings import languages
from service.embeddings.sparse import Bm25Encoder

# A small corpus in four languages; each question must find its own passage first.
CORPUS = {
    "en-etna": "Mount Etna in Sicily is one of the most active volcanoes in the world.",
    "en-bread": "Sourdough bread rises with a culture of wild yeast and lactic acid bacteria.",
    "es-volcan": "El volcán Popocatépetl está cerca de la Ciudad de México y tiene erupciones.",
    "es-pan": "El pan de masa madre se hace con harina, agua y levaduras silvestres.",
    "zh-fuji": "富士山是日本最高的山，海拔三千七百七十六米。",
    "zh-beijing": "北京是中华人民共和国的首都，也是政治和文化中心。",
    "ja-tokyo": "東京タワーは東京都港区にある電波塔です。",
    "de-rhein": "Der Rhein ist einer der längsten Flüsse in Europa und fließt durch Deutschland.",
}
QUESTIONS = {
    "¿Qué volcán está cerca de la Ciudad de México?": "es-volcan",
    "¿Con qué se hace el pan de masa madre?": "es-pan",
    "富士山有多高？": "zh-fuji",
    "中国的首都是哪里": "zh-beijing",
    "東京タワーはどこにありますか": "ja-tokyo",
    "富士山": "zh-fuji",
    "Welcher Fluss fließt durch Deutschland?": "de-rhein",
    "Which volcano in Sicily is active?": "en-etna",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Which volcano in Sicily is the most active of them?", "en"),
        ("¿Cuál es el volcán más activo de la isla?", "es"),
        ("Quel est le volcan le plus actif de la région ?", "fr"),
        ("Welcher Fluss ist der längste in Europa und wo fließt er?", "de"),
        ("¿Quién escribió Don Quijote?", "es"),  # "don" is an English stopword too
        ("Etna", "en"),  # nothing to tell by: the default
        ("Who drinks café au lait in the morning?", "en"),
    ],
)
def test_detect(text: str, expected: str) -> None:
    assert Bm25Encoder().language_of(text) == expected


def test_each_language_gets_its_stemmer_and_stopwords() -> None:
    enc = Bm25Encoder()
    assert enc.terms("los volcanes activos", "es") == enc.terms("el volcán activo", "es")
    assert enc.terms("the volcanoes", "en") == ["volcano"]
    assert enc.terms("les volcans actifs", "fr") == enc.terms("le volcan actif", "fr")
    # English analysis does not know Spanish stopwords nor its plurals.
    assert enc.terms("los volcanes", "en") != enc.terms("el volcán", "en")
    with pytest.raises(ValueError, match="no stemmer"):
        enc.terms("x", "klingon")


def test_cjk_runs_become_bigrams() -> None:
    pieces = [p for p, _ in languages.cjk_pieces("富士山")]
    assert pieces == ["富", "士", "山", "富士", "士山"]
    assert list(languages.cjk_pieces("山")) == [("山", True)]
    assert list(languages.cjk_pieces("abc東京")) == [
        ("abc", False), ("東", True), ("京", True), ("東京", True)
    ]  # fmt: skip
    # Function characters cut the run and go: "は" here, "有" and "多" in the question.
    assert Bm25Encoder().terms("富士山は高い") == [
        "富",
        "士",
        "山",
        "富士",
        "士山",
        "高",
        "い",
        "高い",
    ]
    assert Bm25Encoder().terms("富士山有多高") == ["富", "士", "山", "富士", "士山", "高"]


def bm25_rank(enc: Bm25Encoder, question: str) -> list[str]:
    """BM25 over CORPUS (IDF from the corpus), document language detected, as the store does."""
    import math

    docs = {d: enc.encode_document(t) for d, t in CORPUS.items()}
    n = len(docs)
    df: dict[int, int] = {}
    for v in docs.values():
        for i in v.indices:
            df[i] = df.get(i, 0) + 1
    q = enc.encode_query(question).indices
    scores = {}
    for d, v in docs.items():
        weights = dict(zip(v.indices, v.values, strict=True))
        scores[d] = sum(
            math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) * weights[t] for t in q if t in weights
        )
    return [d for d, s in sorted(scores.items(), key=lambda x: -x[1]) if s > 0]


@pytest.mark.parametrize(("question", "expected"), list(QUESTIONS.items()))
def test_a_question_finds_its_passage_among_other_languages(question: str, expected: str) -> None:
    assert bm25_rank(Bm25Encoder(), question)[:1] == [expected]
