"""The sparse lexical vector: BM25 term weights over a movie's title, people, keywords and genres.

A movie's words (app/catalog/text.py `lexical_text`, with the title counted TITLE_WEIGHT times, a
BM25F-style field weight: a title word says more than one name in a 30-name cast) become a
SparseVector whose indices are term ids and whose values are BM25's saturated term frequencies; the
engine's IDF modifier supplies the inverse document frequency at query time, so the dot product of
a query vector (1 per distinct term) with a document vector is exactly the BM25 score:

    score(q, d) = sum over t in q and d of IDF(t) * tf * (K1 + 1) / (tf + K1 * (1 - B + B * |d| / AVG_LEN))

with tf the term's count in d and |d| the count of d's tokens
(Robertson and Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009, eq. 3.15;
Qdrant's IDF is ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5)) over the points that have the vector.)

Tokens: the text is NFKD-folded to ASCII and lower-cased, apostrophes are dropped ("O'Bannon" ->
"obannon"), and anything but a-z and 0-9 splits words. English stopwords are dropped and a
final "s" is cut from words of four letters or more not ending in "ss" ("zombies" -> "zombie"),
the same on both sides. Each pair of adjacent words within one line of the document (a name, a
title; a comma also ends a line) is a term too, "tom_hanks", and so is each adjacent pair of the
query's words: a person's full name or a title phrase is then one rare term with a high IDF, where
"tom" alone also matches Tom Jones. Only single words count towards |d|. Each token's id is the
first 4 bytes of its BLAKE2b digest, big-endian, modulo 2^31: the same on every run and machine
(Python's own hash() is salted per process). Two tokens that share an id add up, as one term; n
distinct tokens expect about n^2 / 2^32 such pairs (a few for the demo catalogue's words and pairs).

Nothing is loaded: encoding is pure Python.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from app.catalog.models import Movie
from app.catalog.text import lexical_text
from app.vectorstore.base import SparseVector

K1 = 1.2  # term-frequency saturation (the usual 1.2)
# Length normalisation. Lower than the usual 0.75: a movie's length here is mostly its cast list,
# and a name among 30 is not a third as much about that person. Measured on the demo catalogue's
# query set (bench/search.py): NDCG@10 0.442 -> 0.460 hybrid (equal weights), 0.436 -> 0.476 sparse, with 0.3.
B = 0.3
TITLE_WEIGHT = 2  # the title's terms count twice: titles 0.597 -> 0.686 sparse NDCG@10 (with B 0.75)
# The mean tokens per movie document on the demo catalogue (bench/search.py prints it); a fixed
# constant, so a movie's vector never depends on the rest of the catalogue.
AVG_LEN = 38.0
# A correction's weight against a word as typed (app/embedding/spelling.py). Measured on
# bench/search.py's typo queries, hybrid+pop NDCG@10: 0.931 at 1.0 and at 0.75, 0.918 at 0.5.
CORRECTION_WEIGHT = 1.0
ID_SPACE = 2**31
# Names this encoder in the index manifest, so an index built with other tokens, ids or weights is
# rebuilt rather than queried with different term ids. Bump the version when the token rules change
# (v2: word pairs; v3: a line of stopwords alone keeps them, "It").
ENCODER_ID = f"bm25-k{K1}-b{B}-title{TITLE_WEIGHT}-len{AVG_LEN}-blake2b31-v3"

_WORD = re.compile(r"[a-z0-9]+")
_LINES = re.compile(r"[\n,;|]")
_APOSTROPHES = re.compile(r"['\u2019`]")
# fmt: off
STOPWORDS = frozenset([
    "a", "about", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "into", "is",
    "it", "its", "of", "on", "or", "that", "the", "their", "this", "to", "was", "were", "with", "without",
])
# fmt: on


def tokens(text: str) -> list[str]:
    """The terms of `text`, in order, repeats kept (see the module docstring for the rules)."""
    return [_singular(w) for w in _words(text) if w not in STOPWORDS]


def line_tokens(text: str) -> list[str]:
    """`tokens` line by line, where a line of stopwords alone keeps them: a title such as "It" is
    then a term, found by the query "It" (whose own terms keep them the same way)."""
    return [t for terms in _lines(text) for t in terms]


def word_terms(text: str) -> dict[str, str]:
    """Each distinct word of `text` as written (accents folded, lower case) -> its term (`tokens`:
    "wars" -> "war"); stopwords left out unless a line has nothing else, as `line_tokens` does."""
    return {w: _singular(w) for line in _LINES.split(text) for w in _content_words(line)}


def _content_words(line: str) -> list[str]:
    words = _words(line)
    return [w for w in words if w not in STOPWORDS] or words


def _lines(text: str) -> list[list[str]]:
    """Each line's terms (`line_tokens`' rule), one list per line."""
    return [[_singular(w) for w in _content_words(line)] for line in _LINES.split(text)]


def _words(text: str) -> list[str]:
    """The words of `text`: accents dropped, lower case, apostrophes removed; stopwords kept."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c)).lower()
    return _WORD.findall(_APOSTROPHES.sub("", folded))


def pairs(words: list[str]) -> list[str]:
    """Adjacent word pairs of one line's terms: ["tom", "hanks"] -> ["tom_hanks"]."""
    return [f"{a}_{b}" for a, b in zip(words, words[1:], strict=False)]


def _singular(word: str) -> str:
    return word[:-1] if len(word) >= 4 and word.endswith("s") and not word.endswith("ss") else word


def term_id(token: str) -> int:
    """A token's index in the sparse vector: stable across runs, in [0, 2^31)."""
    digest = hashlib.blake2b(token.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % ID_SPACE


def _sparse(weights: dict[int, float]) -> SparseVector:
    ids = sorted(weights)
    return SparseVector(tuple(ids), tuple(float(weights[i]) for i in ids))


def _by_id(terms: Iterable[tuple[str, float]]) -> dict[int, float]:
    out: dict[int, float] = {}
    for token, weight in terms:
        i = term_id(token)
        out[i] = out.get(i, 0.0) + weight
    return out


def term_vector(term: str) -> SparseVector:
    """A query of the one term `term` as it stands ("star_trek" is the pair only, not its words)."""
    return _sparse({term_id(term): 1.0})


def document_vector(text: str) -> SparseVector:
    """BM25's saturated term frequency of each term of `text` (no IDF: the engine applies it).
    An empty text gives an empty vector; a line of stopwords alone keeps them (`line_tokens`)."""
    per_line = _lines(text)  # each line tokenised once: its terms, and the pairs within it
    words = [t for terms in per_line for t in terms]
    norm = K1 * (1 - B + B * len(words) / AVG_LEN)
    counts = Counter(words) + Counter(p for terms in per_line for p in pairs(terms))
    return _sparse(_by_id((t, tf * (K1 + 1) / (tf + norm)) for t, tf in counts.items()))


def query_vector(text: str, corrections: Mapping[str, Sequence[str]] | None = None) -> SparseVector:
    """1.0 for each distinct term of `text` (its words and adjacent word pairs), so the dot product
    with a document is its BM25 score. `corrections` (app/embedding/spelling.py: misspelt word ->
    title words close to it) adds each correction, and each pair it makes with a neighbouring word
    or one of its corrections, at CORRECTION_WEIGHT."""
    words = line_tokens(text)
    terms = dict.fromkeys([*words, *pairs(words)], 1.0)
    if corrections:
        options = [[w, *corrections.get(w, ())] for w in words]
        fixed = [c for cs in options for c in cs[1:]]
        neighbours = zip(options, options[1:], strict=False)
        fixed += [f"{a}_{b}" for left, right in neighbours for a in left for b in right]
        terms |= {t: CORRECTION_WEIGHT for t in fixed if t not in terms}
    return _sparse(_by_id(terms.items()))


def movie_document(movie: Movie) -> str:
    """What a movie's `lexical` vector is built from: `lexical_text`, the title TITLE_WEIGHT times."""
    return "\n".join([movie.title] * (TITLE_WEIGHT - 1) + [lexical_text(movie)])


def movie_vector(movie: Movie) -> SparseVector:
    """The `lexical` vector of one movie: its title, people, keywords and genres."""
    return document_vector(movie_document(movie))
