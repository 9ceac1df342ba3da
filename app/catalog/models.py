"""SQLModel tables. List-valued fields are JSON columns so SQLite and PostgreSQL share one schema."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel


def _now() -> datetime:
    return datetime.now(UTC)


class Movie(SQLModel, table=True):
    __tablename__ = "movies"

    id: int = Field(primary_key=True)
    title: str
    year: int | None = None
    overview: str | None = None
    tagline: str | None = None
    genres: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    keywords: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    cast: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    director: str | None = None
    writer: str | None = None
    runtime: int | None = None
    country: str | None = None
    language: str | None = None
    popularity: float | None = None
    vote_average: float | None = None
    vote_count: int | None = None
    poster: str | None = None  # local path or http(s) URL


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int = Field(primary_key=True)
    created_at: datetime = Field(default_factory=_now)


class Rating(SQLModel, table=True):
    __tablename__ = "ratings"
    __table_args__ = (Index("ix_ratings_user_ts", "user_id", "timestamp"),)

    user_id: int = Field(primary_key=True, foreign_key="users.id")
    movie_id: int = Field(primary_key=True, foreign_key="movies.id", index=True)
    rating: float
    timestamp: int  # unix seconds
