"""The closed sets of names that cross layers, each defined once: the domain takes them as arguments,
the API validates and documents them, the CLI offers them as choices (`typing.get_args`).

Dependency-free on purpose: the CLI builds its options from these at import, and importing the
domain modules that use them (pandas, torch, the database models) would cost it seconds to start.
"""

from __future__ import annotations

from typing import Literal

# -- recommendations (app/recommend) ---------------------------------------------------------------
Strategy = Literal["content", "collab", "hybrid"]
DEFAULT_STRATEGY: Strategy = "hybrid"  # the API's default and Recommender.recommend()'s
# How an answer was made (RecommendationList.path, the API's `path`).
AnswerPath = Literal["popular", "content_cold_start", "content", "collab_popular", "collab", "hybrid"]
# dense: the query's MiniLM vector on `text`; sparse: its BM25 terms on `lexical`; hybrid: both, RRF.
SearchMode = Literal["dense", "sparse", "hybrid"]
# The named vectors Recommender.similar() compares on: the dense ones (app/vectorstore VECTOR_NAMES).
SimilarVector = Literal["combined", "text", "image", "collab"]
# The lists from the store of record (app/catalog/lists.py).
ListKind = Literal["popular", "top-rated", "new"]

# -- data (app/datasets, including the history imports of app/datasets/history.py) ------------------
PackagedSource = Literal["demo", "ml-100k"]  # ship with the package: no files to give
FolderSource = Literal["movielens", "movies-dataset"]  # read a folder (--dir), not files
SourceName = Literal[PackagedSource, "tmdb", FolderSource]
HistoryFormat = Literal["letterboxd", "imdb"]  # a user's own ratings export (import-ratings)

# -- offline evaluation (app/evaluation) -----------------------------------------------------------
EvalDataset = PackagedSource
EvalProtocol = Literal["stratified", "temporal", "new-movies"]
SplitBy = Literal["user", "item"]  # stratified: hold out a share of each user's ratings, or of each movie's
