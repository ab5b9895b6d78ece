"""`make eval`'s Chinese and Spanish sample: passages among English ones, over /v1/evaluations.

    python -m tests.bench.multilingual [--env K=V ...] [--out FILE]

A small hand-written corpus (Chinese, Spanish and English passages in one collection); each
answerable question must be answered from its own passage, each unanswerable one (about
nothing the corpus holds) must get "not found".
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.abstention import evaluate
from tests.bench.server import post_with_retry, report, running_server, wait_all_settled

PASSAGES = {
    "zh-fuji": "富士山是日本最高的山，海拔三千七百七十六米，是一座活火山。",
    "zh-beijing": "北京是中华人民共和国的首都，也是全国的政治和文化中心，人口超过两千万。",
    "zh-yangtze": "长江是亚洲最长的河流，全长约六千三百公里，流经上海入海。",
    "zh-panda": "大熊猫主要生活在四川的山区，以竹子为食，是中国的国宝。",
    "zh-tea": "龙井茶产于杭州西湖一带，是中国著名的绿茶之一。",
    "zh-wall": "长城始建于春秋战国时期，明朝时进行了大规模的修建。",
    "es-popo": "El Popocatépetl es un volcán activo situado cerca de la Ciudad de México.",
    "es-amazonas": "El río Amazonas atraviesa Brasil y es el más caudaloso del mundo.",
    "es-tortilla": "La tortilla de patatas se prepara con huevos, patatas y aceite de oliva.",
    "es-cervantes": "Miguel de Cervantes escribió Don Quijote de la Mancha en el siglo XVII.",
    "es-andes": "La cordillera de los Andes recorre el oeste de América del Sur de norte a sur.",
    "es-flamenco": "El flamenco es un arte musical y de danza originario de Andalucía.",
    "en-etna": "Mount Etna in Sicily is one of the most active volcanoes in the world.",
    "en-bread": "Sourdough bread rises with a culture of wild yeast and lactic acid bacteria.",
    "en-rhine": "The Rhine flows from the Swiss Alps through Germany to the North Sea.",
}
ANSWERABLE = {
    "富士山有多高？": ("zh-fuji", "三千七百七十六米"),
    "中国的首都是哪里？": ("zh-beijing", "北京"),
    "长江有多长？": ("zh-yangtze", "六千三百公里"),
    "大熊猫吃什么？": ("zh-panda", "竹子"),
    "龙井茶产于哪里？": ("zh-tea", "杭州西湖"),
    "长城是什么时候修建的？": ("zh-wall", "春秋战国时期"),
    "¿Dónde está el volcán Popocatépetl?": ("es-popo", "cerca de la Ciudad de México"),
    "¿Qué país atraviesa el río Amazonas?": ("es-amazonas", "Brasil"),
    "¿Con qué se prepara la tortilla de patatas?": ("es-tortilla", "huevos, patatas y aceite"),
    "¿Quién escribió Don Quijote?": ("es-cervantes", "Miguel de Cervantes"),
    "¿Por dónde recorre la cordillera de los Andes?": ("es-andes", "el oeste de América del Sur"),
    "¿De dónde es originario el flamenco?": ("es-flamenco", "Andalucía"),
}
UNANSWERABLE = [
    "珠穆朗玛峰位于哪个国家？",
    "谁发明了电话？",
    "日本的货币叫什么？",
    "¿Cuál es la capital de Australia?",
    "¿Quién pintó la Mona Lisa?",
    "¿Cuántos planetas tiene el sistema solar?",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", action="append", default=[], help="server setting K=V")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    env = dict(kv.split("=", 1) for kv in args.env)
    answerable = [
        {"question": q, "expected_document_ids": [d], "expected_answer": a}
        for q, (d, a) in ANSWERABLE.items()
    ]
    unanswerable = [{"question": q, "answerable": False} for q in UNANSWERABLE]
    with (
        tempfile.TemporaryDirectory(prefix="citeline-multilingual-") as tmp,
        running_server(Path(tmp) / "data", env) as server,
    ):
        with server.client() as c:
            docs = [{"id": d, "text": t} for d, t in PASSAGES.items()]
            post_with_retry(c, "/v1/documents/batch", {"documents": docs})
            wait_all_settled(c, len(docs), 600)
        runs = {
            "chinese": evaluate(
                server,
                "default",
                [c for c in answerable if "zh" in c["expected_document_ids"][0]] + unanswerable[:3],
            ),
            "spanish": evaluate(
                server,
                "default",
                [c for c in answerable if "es" in c["expected_document_ids"][0]] + unanswerable[3:],
            ),
        }
    result = {
        "corpus": f"{len(PASSAGES)} passages (6 Chinese, 6 Spanish, 3 English), one collection",
        "settings": runs["chinese"]["settings"],
        **{name: run["aggregates"] for name, run in runs.items()},
    }
    return report(result, args.out, started)


if __name__ == "__main__":
    sys.exit(main())
