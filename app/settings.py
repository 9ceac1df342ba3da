"""Typed settings, read from the environment in this one place."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Device = Literal["auto", "cpu", "cuda"]
ImageModel = Literal["efficientnet-lite0", "resnet50"]
# auto: torch fp16 on CUDA; on CPU the fastest runtime measured that keeps the vectors (app/embedding/text.py).
TextBackend = Literal["auto", "torch", "onnx", "onnx-int8", "openvino"]


def default_model_cache_dir() -> Path:
    """Exported models (ONNX), shared by every data dir and run of this user: ~/.cache/movierec."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "movierec"


DEV_SECRET_KEY = "dev-insecure-secret-key-change-me-in-production"  # anyone can read it: tokens for all
MAX_AUTO_WORKERS = 4  # each worker loads the text model (about 0.5 GB) and, on Edge, copies the index


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOVIEREC_", extra="ignore", populate_by_name=True)

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
    text_model_path: Path | None = None
    text_backend: TextBackend = "auto"
    model_cache_dir: Path = Field(default_factory=default_model_cache_dir)
    batch_size: int | None = Field(default=None, ge=1)
    poster_timeout_s: float = 10.0
    poster_concurrency: int = Field(default=8, ge=1)
    # Where relative poster paths (TMDB's "/abc.jpg") resolve: a base URL or a folder; None: next to the movies file.
    poster_base: str | None = None

    secret_key: str = DEV_SECRET_KEY
    token_ttl_hours: int = 24 * 30
    # API worker processes; None: one per CPU core, at most MAX_AUTO_WORKERS. Each holds its own model.
    workers: int | None = Field(default=None, ge=1)
    # Readers of an embedded (Edge) index keep its vectors in memory up to this many movies; 0: never.
    vector_cache_max_points: int = Field(default=200_000, ge=0)
    history_size: int = Field(default=50, ge=1)  # the taste vector: last N ratings
    half_life_days: float = Field(default=365.0, gt=0)
    popularity_weight: float = Field(default=0.1, ge=0, le=1)
    diversity: float = Field(default=0.2, ge=0, le=1)
    # Where `movierec serve`'s workers share their Prometheus samples (emptied at start);
    # None: $TMPDIR/movierec-metrics-<port>.
    metrics_dir: Path | None = Field(
        default=None, validation_alias=AliasChoices("MOVIEREC_METRICS_DIR", "PROMETHEUS_MULTIPROC_DIR")
    )

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.qdrant_api_key and not self.qdrant_url:
            raise ValueError("QDRANT_API_KEY is set but QDRANT_URL is not")
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
