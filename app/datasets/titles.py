"""Movie titles: reading order, alternate titles, and the keys two spellings of one title share.

One set of rules for every reader of titles: the MovieLens-shaped sources (`display_title`), the
demo's metadata joins (`title_keys`) and the Letterboxd / IMDb history imports (`match_keys`).

- MovieLens writes the article last: 'Matrix, The', "Atalante, L'", and before a subtitle
  'Power of Nightmares, The: The Rise of ...'. `article_first` puts it back in front.
- Alternate titles follow the title in parentheses, one group each, possibly nested and possibly
  prefixed 'a.k.a.': 'Léon: The Professional (The Professional) (Léon)', 'To Have, or Not (En
  avoir (ou pas))'. A group inside the title ('You Are (Not) Alone', 'I Am Curious (Yellow) (...)')
  is kept by `match_keys` in the keys that leave off only the groups after it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from app.catalog.text import normalise_title

# Articles MovieLens moves to the end ("Matrix, The", "Postino, Il", "Atalante, L'").
_ARTICLES = "The|A|An|Les|La|Le|L'|Il|I|Gli|Lo|Der|Die|Das|Den|Det|De|Het|El|Los|Las|Un|Une|Una|Uno|O|Os|As|En|Ett"
_TRAILING_ARTICLE = re.compile(rf"^(.*\S),\s*({_ARTICLES})$", re.IGNORECASE)
_ARTICLE_BEFORE_SUBTITLE = re.compile(rf"^(.*?\S),\s*({_ARTICLES}):\s*(\S.*)$", re.IGNORECASE)
_AKA = re.compile(r"^a\.?k\.?a\.?\s*", re.IGNORECASE)
_LEADING_ARTICLE = re.compile(r"^(the|a|an) ")


def article_first(title: str) -> str:
    """'Matrix, The' -> 'The Matrix'; "Atalante, L'" -> "L'Atalante". Only a whole title's last words."""
    m = _TRAILING_ARTICLE.match(title.strip())
    if not m:
        return title.strip()
    body, article = m.group(1), m.group(2)
    return f"{article}{body}" if article.endswith("'") else f"{article} {body}"


def _article_first_anywhere(title: str) -> str:
    """article_first, and also before a subtitle: 'Librarian, The: The Curse' -> 'The Librarian: The Curse'."""
    if m := _ARTICLE_BEFORE_SUBTITLE.match(title.strip()):
        return f"{article_first(f'{m.group(1)}, {m.group(2)}')}: {m.group(3)}"
    return article_first(title)


def _trailing_group(title: str) -> tuple[str, str] | None:
    """(title before, text inside) of the balanced parenthesised group that ends `title`, or None
    (no such group, unbalanced, or the group is the whole title)."""
    text = title.rstrip()
    if not text.endswith(")"):
        return None
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(text[i], 0)
        if depth == 0:
            before = text[:i].rstrip()
            return (before, text[i + 1 : -1]) if before else None
    return None


def _peel(title: str) -> list[tuple[str, str]]:
    """Every trailing group, last first: [(title before it, its text), ...]."""
    peeled = []
    rest = title.strip()
    while (group := _trailing_group(rest)) is not None:
        peeled.append(group)
        rest = group[0]
    return peeled


def split_alternates(title: str) -> tuple[str, list[str]]:
    """'Seven (a.k.a. Se7en)' -> ('Seven', ['Se7en']); nested groups stay whole:
    'To Have, or Not (En avoir (ou pas))' -> ('To Have, or Not', ['En avoir (ou pas)']).
    A title that is only a parenthesis stays whole."""
    peeled = _peel(title)
    main = peeled[-1][0] if peeled else title.strip()
    alternates = [_AKA.sub("", inside).strip() for _, inside in reversed(peeled)]
    return main, [a for a in alternates if a]


def display_title(title: str) -> str:
    """MovieLens title in reading order, alternates kept: 'Postman, The (Postino, Il)' -> 'The Postman (Il Postino)'."""
    main, alternates = split_alternates(title)
    return " ".join([article_first(main), *(f"({article_first(a)})" for a in alternates)])


def title_keys(title: str) -> list[str]:
    """Normalised keys of a MovieLens title: the main title first, then its alternates."""
    main, alternates = split_alternates(title)
    return _unique(normalise_title(article_first(variant)) for variant in (main, *alternates))


def match_keys(title: str) -> tuple[list[str], list[str]]:
    """(own keys, alternate keys) of a title, for matching one spelling of a movie against another;
    each normalised (normalise_title) with the article put first and then dropped ('The', 'A', 'An').

    Own keys, most specific first: the whole title, then the title with its trailing groups left off
    one at a time, down to the bare title. Alternate keys: each trailing group's own keys (a.k.a.
    dropped). 'Léon: The Professional (The Professional) (Léon)' -> (['leon the professional the
    professional leon', 'leon the professional the professional', 'leon the professional'],
    ['professional', 'leon'])."""
    peeled = _peel(title)
    own = [title.strip(), *(before for before, _ in peeled)]
    alternates: list[str] = []
    for _, inside in reversed(peeled):
        alternates += [k for k in _all_keys(_AKA.sub("", inside)) if k not in alternates]
    own_keys = _unique(_loose_key(variant) for variant in own)
    return own_keys, [k for k in alternates if k not in own_keys]


def _all_keys(title: str) -> list[str]:
    own, alternates = match_keys(title)
    return own + alternates


def _loose_key(title: str) -> str:
    return _LEADING_ARTICLE.sub("", normalise_title(_article_first_anywhere(title), every_script=True))


def _unique(keys: Iterable[str]) -> list[str]:
    out: list[str] = []
    for key in keys:
        if key and key not in out:
            out.append(key)
    return out
