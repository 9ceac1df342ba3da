"""Spelling correction for search: a misspelt query word is matched to the catalogue's title words.

A query word no title and no document of the index contains ("Godfater", "matrx", "interstelar") is
expanded to the title words within a few Damerau-Levenshtein edits of it (insertions, deletions,
substitutions and swaps of adjacent letters: Damerau, "A technique for computer detection and
correction of spelling errors", CACM 7(3), 1964): what Lucene's fuzzy query and most search
engines' "did you mean" do, with RapidFuzz computing the distances. The lexical query then asks for
the word and its corrections, so BM25 ranks the titles they occur in, and the adjacent-word pairs of
the corrections ("star wrs" -> "star_war") pick the right one among several close words. Words are
compared as written, before the plural cut ("wrs" is one edit from "wars", two from its term "war").
Two title words run together ("startrek", "darkknight") are split back, both words and their pair,
unless a title word is one edit away or no title holds the pair ("friendship").

A word any document already contains is never corrected: a name in a cast or a rare word is what the
user meant. Neither is a word of fewer than MIN_LETTERS letters, nor one with a digit ("1950s").
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from functools import lru_cache
from itertools import islice, takewhile

from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein

from app.embedding import lexical

MIN_LETTERS = 3
# Edits allowed by word length: 1 up to 7 letters, 2 from LONG_WORD (Lucene's AUTO fuzziness allows 2
# from 6 letters; on bench/search.py's typo queries 6 and 7 scored the same as 8).
LONG_WORD = 8
# Corrections kept per word: the nearest, then those in most titles and names. 3, 4 and 8 scored alike
# on bench/search.py's typo queries; fewer bring in fewer unrelated titles ("centre": center, contre...).
MAX_EXPANSIONS = 4
MIN_PART = 2  # letters of each half of a word split in two title words
# Words of one query corrected at most (the first ones): each costs a scan of the vocabulary's words
# of about its length (a few ms at 62k movies), so a long query of unknown words stays cheap.
MAX_CORRECTED = 8
CACHED_WORDS = 4096  # corrections remembered per vocabulary, least recently asked out first
MAX_COMPLETIONS = 4  # title and name words a query's last word, still being typed, may be the start of


def max_edits(word: str) -> int:
    """Damerau-Levenshtein edits a correction of `word` may be away: 0 (never corrected), 1 or 2."""
    if len(word) < MIN_LETTERS or not word.isalpha():
        return 0
    return 2 if len(word) >= LONG_WORD else 1


class Speller:
    """The words of one index generation's titles and names, to correct query words against.

    `titles`: every movie's title and payload `people` name, split as `lexical.word_terms` splits
    text, so that a correction is a term the lexical vectors hold. Memory: about 160 bytes a word
    (24k words at the demo's 9,061 movies: 4 MB). Thread-safe once built."""

    def __init__(self, titles: Iterable[str]) -> None:
        self._term: dict[str, str] = {}  # a word as written -> its lexical term
        self._titles_with: Counter[str] = Counter()  # a word as written -> titles and names holding it
        for title in titles:
            words = lexical.word_terms(title)
            self._term.update(words)
            self._titles_with.update(words.keys())
        # By length: a word within k edits of another differs in length by k at most, so only those
        # lengths are scanned.
        self._by_length: dict[int, list[str]] = defaultdict(list)
        for w in self._term:
            self._by_length[len(w)].append(w)
        self._sorted = sorted(self._term)  # for the words a prefix starts
        # `_corrections`, remembered per word (a cache per vocabulary, freed with it)
        self.corrections: Callable[[str], list[str]] = lru_cache(maxsize=CACHED_WORDS)(self._corrections)

    def _corrections(self, word: str) -> list[str]:
        """The terms of the title words within `max_edits(word)` edits of `word` (as written), nearest
        first, then those in the most titles; at most MAX_EXPANSIONS. Empty for a title word itself
        or a word too short to correct."""
        edits = max_edits(word)
        if not edits or word in self._term:
            return []
        near = [w for n in range(len(word) - edits, len(word) + edits + 1) for w in self._by_length.get(n, ())]
        close = process.extract(word, near, scorer=DamerauLevenshtein.distance, score_cutoff=edits, limit=None)
        close.sort(key=lambda match: (match[1], -self._titles_with[match[0]], match[0]))
        # A split beats words two edits away ("startrek" is not "started"), not one ("braveheat" is
        # Braveheart, not "brave" and "heat").
        if not (close and close[0][1] <= 1) and (split := self._split(word)):
            return split
        return list(dict.fromkeys(self._term[w] for w, _, _ in close))[:MAX_EXPANSIONS]

    def _split(self, word: str) -> list[str]:
        """Two title words `word` is made of, and their pair ("startrek" -> star, trek, star_trek); of
        several ways to split it, the one whose rarer half is in the most titles. Empty if none."""
        halves = [(word[:i], word[i:]) for i in range(MIN_PART, len(word) - MIN_PART + 1)]
        known = [(a, b) for a, b in halves if a in self._term and b in self._term]
        if not known:
            return []
        a, b = max(known, key=lambda pair: min(self._titles_with[pair[0]], self._titles_with[pair[1]]))
        return [self._term[a], self._term[b], f"{self._term[a]}_{self._term[b]}"]

    def completions(self, prefix: str) -> list[str]:
        """The terms of the title and name words that start with `prefix` ("godf" -> godfather), those
        in the most titles first; at most MAX_COMPLETIONS. Empty for fewer than MIN_LETTERS letters."""
        if not max_edits(prefix):
            return []
        following = islice(self._sorted, bisect_left(self._sorted, prefix), None)
        started = takewhile(lambda w: w.startswith(prefix), following)
        words = sorted((w for w in started if w != prefix), key=lambda w: (-self._titles_with[w], w))
        return list(dict.fromkeys(self._term[w] for w in words))[:MAX_COMPLETIONS]

    def correct(self, text: str, known: Callable[[str], bool]) -> dict[str, list[str]]:
        """Query term -> the terms to search for besides it, for each of the first MAX_CORRECTED
        words of `text` that no title or name holds and that `known` (does any document of the index
        hold this term? an engine lookup) denies: its corrections, and for the last word, which may
        be still being typed, the words it starts (search as you type: "the godf")."""
        words = lexical.word_terms(text)
        last = next(reversed(words), None)
        unknown = [(w, t) for w, t in words.items() if max_edits(w) and w not in self._term]
        out = {}
        for word, term in unknown[:MAX_CORRECTED]:
            if known(term):
                continue
            fixes = self.corrections(word)
            # A split stands only where some title holds its two words side by side: "startrek" is
            # Star Trek, "friendship" is no friend and ship.
            if fixes and "_" in fixes[-1] and not known(fixes[-1]):
                fixes = []
            if word == last:
                fixes = list(dict.fromkeys([*fixes, *self.completions(word)]))
            if fixes:
                out[term] = fixes
        return out
