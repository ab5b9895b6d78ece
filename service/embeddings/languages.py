"""Language analysis for BM25 without a model: stopwords, Snowball stemmers, CJK bigrams.

A text's language is set by the caller (a document's `metadata.language`, a request's
`language`) or detected from its stopwords: the language whose list holds most of the text's
words wins, English when none stands out. Every Snowball language of PyStemmer can be set; the
ones with a stopword list below can also be detected.

Chinese, Japanese and Korean are written without spaces between words: a run of their
characters becomes its characters and its overlapping bigrams ("富士山" -> "富", "士", "山",
"富士", "士山"), as Lucene's CJK analyzer does with unigrams kept, after function characters
(的, 是, は, の ...) are cut out. That needs no dictionary: a question's bigrams meet the
passage's whatever the segmentation would have been (the rarer bigrams weigh most), and its
characters meet a word the passage writes inside a longer one ("长" in "最长").
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import Stemmer

DEFAULT = "en"

# ISO 639-1 code (or the Snowball name) -> Snowball algorithm of PyStemmer.
SNOWBALL = {
    "ar": "arabic", "hy": "armenian", "eu": "basque", "ca": "catalan", "cs": "czech",
    "da": "danish", "nl": "dutch", "en": "english", "eo": "esperanto", "et": "estonian",
    "fi": "finnish", "fr": "french", "de": "german", "el": "greek", "hi": "hindi",
    "hu": "hungarian", "id": "indonesian", "ga": "irish", "it": "italian", "lt": "lithuanian",
    "ne": "nepali", "no": "norwegian", "nb": "norwegian", "fa": "persian", "pl": "polish",
    "pt": "portuguese", "ro": "romanian", "ru": "russian", "sr": "serbian", "es": "spanish",
    "sv": "swedish", "ta": "tamil", "tr": "turkish",
}  # fmt: skip
LANGUAGES = frozenset(SNOWBALL) | frozenset(SNOWBALL.values())


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# English: NLTK's list, which also holds the contraction pieces the tokenizer leaves
# ("don't" -> "don", "t"). Question words ("what", "which", "did") match everything; on SQuAD this
# list scores 0.013 nDCG@10 above Lucene's 33-word list. The others: Snowball's lists, trimmed.
STOPWORDS: dict[str, frozenset[str]] = {
    "en": _words(
        """
        a about above after again against ain all am an and any are aren as at be because been
        before being below between both but by can couldn d did didn do does doesn doing don down
        during each few for from further had hadn has hasn have haven having he her here hers
        herself him himself his how i if in into is isn it its itself just ll m ma me mightn more
        most mustn my myself needn no nor not now o of off on once only or other our ours
        ourselves out over own re s same shan she should shouldn so some such t than that the
        their theirs them themselves then there these they this those through to too under until
        up ve very was wasn we were weren what when where which while who whom why will with won
        wouldn y you your yours yourself yourselves
        """
    ),
    "es": _words(
        """
        de la que el en y a los del se las por un para con no una su al lo como más pero sus le
        ya o este sí porque esta entre cuando muy sin sobre también me hasta hay donde quien
        desde todo nos durante todos uno les ni contra otros ese eso ante ellos e esto mí antes
        algunos qué unos yo otro otras otra él tanto esa estos mucho quienes nada muchos cual
        poco ella estar estas algunas algo nosotros mi mis tú te ti tu tus ellas nosotras
        vosotros vosotras os mío mía míos mías tuyo tuya suyo suya nuestro nuestra vuestro
        esos esas estoy estás está estamos están es son era eran fue fueron ser sido soy eres
        somos he ha han había tiene tienen tengo cuál cuáles cómo dónde cuándo cuánto quién
        """
    ),
    "fr": _words(
        """
        au aux avec ce ces dans de des du elle en et eux il ils je la le les leur lui ma mais me
        même mes moi mon ne nos notre nous on ou par pas pour qu que qui sa se ses son sur ta te
        tes toi ton tu un une vos votre vous c d j l à m n s t y été étée étées étés étant suis es
        est sommes êtes sont serai sera seront étais était étions étaient fus fut furent ai as
        avons avez ont aurai aura avais avait avaient eu ceci cela celà cet cette ici ils les
        leurs quel quels quelle quelles sans soi quoi où comment quand combien pourquoi
        """
    ),
    "de": _words(
        """
        aber alle allem allen aller alles als also am an ander andere anderem anderen anderer
        anderes auch auf aus bei bin bis bist da damit dann der den des dem die das dass du er
        ihn ihm es ein eine einem einen einer eines für hat hatte hatten hier hin hinter ich mir
        mich ihr ihre im in ist ja jede jedem jeden jeder jedes kein keine können könnte machen
        man manche mein meine mit muss musste nach nicht nichts noch nun nur ob oder ohne sehr
        sein seine sich sie sind so solche soll sollte sondern sonst über um und uns unser unter
        viel vom von vor war waren warst was weg weil weiter welche welchem welchen welcher
        welches wenn werde werden wie wieder will wir wird wirst wo wollen wollte würde würden zu
        zum zur zwar zwischen wer wann warum wieso
        """
    ),
    "it": _words(
        """
        ad al allo ai agli all agl alla alle con col coi da dal dallo dai dagli dall dagl dalla
        dalle di del dello dei degli dell degl della delle in nel nello nei negli nell negl nella
        nelle su sul sullo sui sugli sull sugl sulla sulle per tra contro io tu lui lei noi voi
        loro mio mia miei mie tuo tua tuoi tue suo sua suoi sue nostro nostra vostro vostra mi ti
        ci vi lo la li le gli ne il un uno una ma ed se perché anche come dov dove che chi cui non
        più quale quanto quanti quanta quante quello quelli quella quelle questo questi questa
        queste si tutto tutti a c e i l o ho hai ha abbiamo avete hanno è sono era erano fu
        furono essere stato quando cosa
        """
    ),
    "pt": _words(
        """
        de a o que e do da em um para com não uma os no se na por mais as dos como mas ao ele
        das à seu sua ou quando muito nos já eu também só pelo pela até isso ela entre depois
        sem mesmo aos seus quem nas me esse eles você essa num nem suas meu às minha numa pelos
        elas qual nós lhe deles essas esses pelas este dele tu te vocês vos lhes meus minhas
        teu tua teus tuas nosso nossa nossos nossas dela delas esta estes estas aquele aquela
        aqueles aquelas isto aquilo estou está estamos estão foi foram é são era eram ser sido
        tem têm tinha onde como quanto porque
        """
    ),
    "nl": _words(
        """
        de en van ik te dat die in een hij het niet zijn is was op aan met als voor had er maar
        om hem dan zou of wat mijn men dit zo door over ze zich bij ook tot je mij uit der daar
        haar naar heb hoe heeft hebben deze u want nog zal me zij nu ge geen omdat iets worden
        toch al waren veel meer doen toen moet ben zonder kan hun dus alles onder ja eens hier
        wie werd altijd doch wordt wezen kunnen ons zelf tegen na reeds wil kon niets uw iemand
        geweest andere waar wanneer waarom
        """
    ),
}

# word -> the languages it is a stopword of (one lookup per word when detecting)
_STOPWORD_OF: dict[str, tuple[str, ...]] = {}
for _lang, _words_of in STOPWORDS.items():
    for _w in _words_of:
        _STOPWORD_OF[_w] = (*_STOPWORD_OF.get(_w, ()), _lang)

# Letters of each detectable language's alphabet that English does not use.
_LETTERS = {
    "es": frozenset("ñáéíóúü"),
    "fr": frozenset("àâçéèêëîïôûùœ"),
    "de": frozenset("äöüß"),
    "it": frozenset("àèéìòù"),
    "pt": frozenset("ãõçáâêéíóú"),
    "nl": frozenset("ëïé"),
}

# Chinese (Han), Japanese kana, Korean Hangul: written without spaces.
_CJK = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u3131-\u318e"
    r"\U00020000-\U0002ffff]+"
)
_DETECT_MIN_HITS = 2
# Function characters of Chinese and Japanese (particles, copulas, question words): a CJK run is
# cut at them and they are dropped, so "富士山有多高" is searched as "富士山" and "高".
CJK_STOP_CHARS = frozenset(
    "的了是在有和吗呢吧啊哪里什么怎谁几多与及或也都这那个之其把被就很并而于"
    "はがのをにでともへやかねよですます"
)


def of_metadata(metadata: dict[str, object]) -> str | None:
    """A document's language as its `metadata.language` sets it (None: detect it); a value
    that names no known language is ignored."""
    value = metadata.get("language")
    return value if isinstance(value, str) and value.lower() in LANGUAGES else None


def snowball(language: str) -> str:
    """The Snowball algorithm for an ISO 639-1 code or a Snowball name; ValueError if none."""
    name = SNOWBALL.get(language.lower(), language.lower())
    if name not in SNOWBALL.values():
        raise ValueError(f"no stemmer for language {language!r}; known: {sorted(SNOWBALL)}")
    return name


def code(language: str) -> str:
    """The ISO 639-1 code of a language given as a code or a Snowball name."""
    name = snowball(language)
    return next(c for c, n in SNOWBALL.items() if n == name)


def stopwords(language: str) -> frozenset[str]:
    return STOPWORDS.get(code(language), frozenset())


def new_stemmer(language: str) -> Stemmer.Stemmer:
    return Stemmer.Stemmer(snowball(language))


def detect(words: list[str]) -> str:
    """The language whose stopwords are most of `words` (lower-cased), English on a tie or
    when too few are stopwords of any list to tell. A word with a letter of a language's
    alphabet that English lacks (ñ, é, ß ...) counts half, for questions of few words."""
    hits = dict.fromkeys(STOPWORDS, 0.0)
    for w in words:
        for lang in _STOPWORD_OF.get(w, ()):
            hits[lang] += 1.0
        if not w.isascii():
            for lang, letters in _LETTERS.items():
                if not letters.isdisjoint(w):
                    hits[lang] += 0.5
    best = max(hits, key=lambda lang: (hits[lang], lang == DEFAULT))
    if hits[best] < min(_DETECT_MIN_HITS, max(1, len(words) // 4)) or hits[best] == hits[DEFAULT]:
        return DEFAULT
    return best


def has_cjk(word: str) -> bool:
    return _CJK.search(word) is not None


def cjk_pieces(word: str) -> Iterator[tuple[str, bool]]:
    """The word cut into (piece, is_cjk): CJK runs, split at CJK_STOP_CHARS, become their
    characters and their bigrams; the rest stays whole."""
    at = 0
    for m in _CJK.finditer(word):
        if m.start() > at:
            yield word[at : m.start()], False
        for run in _split_at_stops(m.group()):
            for ch in run:
                yield ch, True
            for i in range(len(run) - 1):
                yield run[i : i + 2], True
        at = m.end()
    if at < len(word):
        yield word[at:], False


def _split_at_stops(run: str) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    for ch in run:
        if ch in CJK_STOP_CHARS:
            if current:
                pieces.append("".join(current))
            current = []
        else:
            current.append(ch)
    if current:
        pieces.append("".join(current))
    return pieces
