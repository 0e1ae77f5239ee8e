"""Text -> lexical terms, for every script, with no dictionary.

BM25 is only as good as its terms. Latin-script words are lower-cased, English stopwords dropped
and words stemmed (Snowball, via PyStemmer; measured on SciFact: the stemmer is worth 0.025
nDCG@10). Chinese, Japanese and Korean have no spaces between words, so a run of Han, Kana or
Hangul becomes overlapping character bigrams, the convention of Lucene's ``CJKAnalyzer`` (a
lone character stays a unigram): "汽车保险" gives 汽车, 车保, 保险, and a query shares its bigrams
with every text that contains its words. Codes must stay findable as written: a run of pieces
that touch or are joined by ``- _ . / : #`` and hold a digit (``ABC-123``, ``v2.1``) gives
its pieces and also the whole, joined without the connectors, so ``ABC-123`` and ``abc123``
meet (and ``ABC 123`` shares both pieces); digits touching CJK characters are also kept with
them (``第10句话`` gives ``第10句``).

Text is NFKC-normalised first, so full-width letters and digits are the ASCII ones.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from dataclasses import dataclass

import Stemmer

__all__ = ["ENGLISH_STOPWORDS", "Analyzer", "default_analyzer"]

#: Lucene's English stopwords (``EnglishAnalyzer.ENGLISH_STOP_WORDS_SET``), the set the SciFact
#: figures were measured with.
ENGLISH_STOPWORDS = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is"}
    | {"it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there"}
    | {"these", "they", "this", "to", "was", "will", "with"}
)

_CJK = (
    "\u1100-\u11ff"  # Hangul Jamo
    "\u3040-\u309f"  # Hiragana
    "\u30a0-\u30ff"  # Katakana
    "\u3130-\u318f"  # Hangul compatibility Jamo
    "\u31f0-\u31ff"  # Katakana phonetic extensions
    "\u3400-\u4dbf"  # Han extension A
    "\u4e00-\u9fff"  # Han
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # Han compatibility
    "\uff66-\uff9f"  # half-width Katakana
    "\U00020000-\U0003134f"  # Han extensions B to G
)
# A CJK run, or a run of other letters and digits (any script); everything else separates.
_PIECE = re.compile(rf"(?P<cjk>[{_CJK}]+)|(?P<word>[^\W_{_CJK}]+)")
_CONNECTORS = frozenset("-_./:#")
_LETTERS_DIGITS = re.compile(r"\d+|[^\W\d_]+")


@dataclass(frozen=True)
class Analyzer:
    """Turns a text into the terms a lexical index stores and a query looks up.

    Args:
        language: Snowball stemmer language for Latin-script words (see
            ``Stemmer.algorithms()``), or ``None`` for no stemming.
        stopwords: words dropped before stemming (lower-case); English's by default.
    """

    language: str | None = "english"
    stopwords: frozenset[str] = ENGLISH_STOPWORDS

    def __post_init__(self) -> None:
        if self.language is not None and self.language not in Stemmer.algorithms():
            raise ValueError(
                f"no Snowball stemmer for {self.language!r}; one of {Stemmer.algorithms()}"
            )

    def name(self) -> str:
        """What the terms depend on: an index built with another analyzer must be rebuilt."""
        return f"v1 stem={self.language} stopwords={','.join(sorted(self.stopwords))}"

    def terms(self, text: str) -> list[str]:
        """The terms of ``text``, in order, repeated as often as they occur.

        Args:
            text: any text.

        Returns:
            The terms.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}")
        text = unicodedata.normalize("NFKC", text)
        terms: list[str] = []
        stem_at: list[int] = []  # positions of the words to stem, stemmed in one call at the end
        group: list[tuple[str, bool]] = []  # pieces of one code candidate: (text, is CJK)
        end = -1
        for match in _PIECE.finditer(text):
            joined = match.start() == end or (
                match.start() == end + 1 and text[end] in _CONNECTORS and bool(group)
            )
            if not joined and group:
                self._group_terms(group, terms, stem_at)
                group = []
            group.append((match.group(), match.lastgroup == "cjk"))
            end = match.end()
        if group:
            self._group_terms(group, terms, stem_at)
        if stem_at and self.language is not None:
            stems = _stemmer(self.language).stemWords([terms[at] for at in stem_at])
            for at, stem in zip(stem_at, stems, strict=True):
                terms[at] = stem
        return terms

    def _group_terms(
        self, group: list[tuple[str, bool]], terms: list[str], stem_at: list[int]
    ) -> None:
        """The terms of pieces that touch or are joined by connectors: each piece's own, then
        each code among them (a run of non-CJK pieces holding a digit) joined, and with the
        CJK characters touching it, so ``第10句话`` also gives ``第10句``."""
        if len(group) == 1:
            piece, cjk = group[0]
            if cjk:
                _bigrams(piece, terms)
            else:
                self._word_terms(piece.lower(), terms, stem_at)
            return
        for piece, cjk in group:
            if cjk:
                _bigrams(piece, terms)
            else:
                self._word_terms(piece.lower(), terms, stem_at)
        start = 0
        while start < len(group):
            if group[start][1]:
                start += 1
                continue
            stop = start
            while stop < len(group) and not group[stop][1]:
                stop += 1
            code = "".join(piece for piece, _ in group[start:stop]).lower()
            if any(character.isdigit() for character in code):
                if stop - start > 1:
                    terms.append(code)
                before = group[start - 1][0][-1] if start > 0 else ""
                after = group[stop][0][0] if stop < len(group) else ""
                if before or after:
                    terms.append(before + code + after)
            start = stop

    def _word_terms(self, word: str, terms: list[str], stem_at: list[int]) -> None:
        if word.isalpha():
            if word not in self.stopwords:
                stem_at.append(len(terms))
                terms.append(word)
            return
        parts = _LETTERS_DIGITS.findall(word)
        if len(parts) > 1:  # "abc123": the parts, then the whole
            for part in parts:
                self._word_terms(part, terms, stem_at)
        terms.append(word)


def _bigrams(run: str, terms: list[str]) -> None:
    if len(run) == 1:
        terms.append(run)
    else:
        terms.extend(run[start : start + 2] for start in range(len(run) - 1))


_local = threading.local()


def _stemmer(language: str) -> Stemmer.Stemmer:
    # A PyStemmer instance caches stems and is not thread-safe: one per thread and language.
    stemmers: dict[str, Stemmer.Stemmer] = _local.__dict__.setdefault("stemmers", {})
    if language not in stemmers:
        stemmers[language] = Stemmer.Stemmer(language)
    return stemmers[language]


@functools.cache
def default_analyzer() -> Analyzer:
    """English stemming and stopwords for Latin script, bigrams for CJK."""
    return Analyzer()
