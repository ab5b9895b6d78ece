"""BM25 sparse vectors without a model: the document side of BM25, the IDF left to the engine.

A document vector holds, per stemmed term, BM25's saturated term frequency
tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avg_len)). The store's sparse vector has Qdrant's
IDF modifier, so at query time the engine multiplies each matched term by
ln(1 + (N - n + 0.5) / (n + 0.5)) over the collection's current N and document frequencies n:
the sum over query terms is exactly BM25, and IDF stays right as the collection grows without
re-encoding anything. Query vectors are therefore 1.0 per distinct term.
"""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import cast

import Stemmer

from service.embeddings import languages
from service.store.base import SparseVector

K1 = 1.2
B = 0.75
# avg_len is in terms (words left after stopwords). The engine never sees the collection's mean
# length, so it is a constant. BM25 is flat around the true mean, and one value measured best on
# both data sets here, better than each collection's own mean (exact BM25 over our vectors,
# tests/bench: nDCG@10 at avg_len 64 / 128 / 256 / the real mean):
#   squad2-dev (mean 80 terms):  0.8995 / 0.9025 / 0.9014 / 0.9010
#   nfcorpus  (mean 156 terms):  0.3181 / 0.3217 / 0.3178 / 0.3210  (bm25s: 0.3217)
# Changing it changes new chunks' weights only: re-index a collection to make them uniform.
DEFAULT_AVG_LEN = 128.0

# Letters and digits; "_" and every other punctuation mark split words (\w alone keeps "_").
_WORD = re.compile(r"[^\W_]+")
_CACHE_LIMIT = 1 << 16  # distinct words remembered per language; cleared when full
_STOPWORD_ID = -1
_DETECT_WORDS = 400  # a text's language is told from its first words

STOPWORDS = languages.STOPWORDS[languages.DEFAULT]


def term_id(term: str) -> int:
    """Stable id of a stemmed term: its 4-byte BLAKE2b digest as a big-endian uint32."""
    # Not hash(): that is salted per process, and ids must agree across workers and restarts.
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=4).digest(), "big")


class Bm25Encoder:
    """Sparse BM25 vectors for documents and queries; safe to share between threads.

    `language` (an ISO 639-1 code or a Snowball name) picks the stopwords and stemmer; None
    detects it from the text (see `languages`). Chinese, Japanese and Korean runs become
    character bigrams in any language.
    """

    def __init__(self, avg_len: float = DEFAULT_AVG_LEN, k1: float = K1, b: float = B) -> None:
        if not avg_len > 0:
            raise ValueError(f"avg_len must be positive, got {avg_len}")
        if not k1 > 0 or not 0 <= b <= 1:
            raise ValueError(f"need k1 > 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.avg_len = float(avg_len)
        self.k1 = k1
        self.b = b
        # Per language: word -> term id, _STOPWORD_ID, or the ids of its CJK bigrams. Dict
        # reads and writes are atomic under the GIL; two threads may both fill one entry.
        self._ids: dict[str, dict[str, int | tuple[int, ...]]] = {}
        self._local = threading.local()  # a Stemmer object is not thread-safe: one per thread

    def encode_documents(
        self, texts: Sequence[str], languages: Sequence[str | None] | None = None
    ) -> list[SparseVector]:
        langs = languages if languages is not None else [None] * len(texts)
        return [self.encode_document(t, lang) for t, lang in zip(texts, langs, strict=True)]

    def encode_document(self, text: str, language: str | None = None) -> SparseVector:
        counts = Counter(self._term_ids(text, language))
        if not counts:
            return SparseVector(indices=[], values=[])
        k1, length = self.k1, counts.total()
        norm = k1 * (1.0 - self.b + self.b * length / self.avg_len)
        indices = sorted(counts)
        values = [(tf := counts[i]) * (k1 + 1.0) / (tf + norm) for i in indices]
        return SparseVector(indices=indices, values=values)

    def encode_query(self, text: str, language: str | None = None) -> SparseVector:
        """1.0 per distinct term, weighed by the engine's IDF.

        Weighting by query term count ranks the same on SQuAD (nDCG@10 within 0.0005), and unit
        weights keep a repeated or stuffed query word from dominating the score.
        """
        indices = sorted(set(self._term_ids(text, language)))
        return SparseVector(indices=indices, values=[1.0] * len(indices))

    def language_of(self, text: str) -> str:
        """The ISO 639-1 code this encoder analyses `text` in when no language is given."""
        return languages.detect(_words(text)[:_DETECT_WORDS])

    def terms(self, text: str, language: str | None = None) -> list[str]:
        """The analysed terms of `text`, in order (for inspection and tests)."""
        words = _words(text)
        lang = self._language(words, language)
        stop, stemmer = languages.stopwords(lang), self._stemmer(lang)
        out: list[str] = []
        for w in words:
            if languages.has_cjk(w):
                out.extend(p if cjk else stemmer.stemWord(p) for p, cjk in languages.cjk_pieces(w))
            elif w not in stop:
                out.append(stemmer.stemWord(w))
        return out

    def _language(self, words: list[str], language: str | None) -> str:
        if language is not None:
            return languages.code(language)
        return languages.detect(words[:_DETECT_WORDS])

    def _term_ids(self, text: str, language: str | None) -> list[int]:
        words = _words(text)
        lang = self._language(words, language)
        ids = self._ids.get(lang)
        if ids is None:
            ids = self._ids.setdefault(lang, {})
        try:
            found = [ids[w] for w in words]  # the common case: every word seen before
        except KeyError:
            found = [self._id(ids, lang, w) for w in words]
        out: list[int] = []
        for tid in found:
            if type(tid) is int:
                if tid != _STOPWORD_ID:
                    out.append(tid)
            else:
                out.extend(cast(tuple[int, ...], tid))
        return out

    def _id(
        self, ids: dict[str, int | tuple[int, ...]], lang: str, word: str
    ) -> int | tuple[int, ...]:
        tid = ids.get(word)
        return self._learn(ids, lang, word) if tid is None else tid

    def _learn(
        self, ids: dict[str, int | tuple[int, ...]], lang: str, word: str
    ) -> int | tuple[int, ...]:
        tid: int | tuple[int, ...]
        if languages.has_cjk(word):
            stemmer = self._stemmer(lang)
            tid = tuple(
                term_id(p if cjk else stemmer.stemWord(p)) for p, cjk in languages.cjk_pieces(word)
            )
        elif word in languages.stopwords(lang):
            tid = _STOPWORD_ID
        else:
            tid = term_id(self._stemmer(lang).stemWord(word))
        if len(ids) >= _CACHE_LIMIT:
            ids.clear()
        ids[word] = tid
        return tid

    def _stemmer(self, lang: str) -> Stemmer.Stemmer:
        stemmers: dict[str, Stemmer.Stemmer] | None = getattr(self._local, "stemmers", None)
        if stemmers is None:
            stemmers = self._local.stemmers = {}
        stemmer = stemmers.get(lang)
        if stemmer is None:
            stemmer = stemmers[lang] = languages.new_stemmer(lang)
        return stemmer


def _words(text: str) -> list[str]:
    """Lower-cased words; non-ASCII text is NFKC-normalised and case-folded first."""
    if text.isascii():
        return _WORD.findall(text.lower())
    # NFKC composes "e\u0301" into one letter (\w does not match a bare combining mark) and
    # folds compatibility forms (ﬁ, full-width letters); casefold maps "ß" to "ss".
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
