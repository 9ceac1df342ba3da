"""Talking to the REST API in tests: tokens, the error body's contract, a recommendation call."""

from __future__ import annotations

from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.auth import issue_token
from app.catalog import repository as repo
from app.settings import Settings

NEW_USER = 9_000_000  # ids above every MovieLens user: tests that create users start here


def bearer(settings: Settings, *, user_id: int | None = None, admin: bool = False) -> dict[str, str]:
    """The Authorization header of a fresh token: an admin's, or one user's."""
    return {"Authorization": f"Bearer {issue_token(settings, user_id=user_id, admin=admin)}"}


def rated_by(db: Engine, user_id: int) -> set[int]:
    """The ids of the movies `user_id` has rated, read through another connection."""
    with Session(db) as s:
        return {r.movie_id for r in repo.user_ratings(s, user_id)}


def assert_error(resp: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """Assert the API's error contract (status, a detail, no traceback, the field named); the body."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["status_code"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in resp.text and 'File "' not in resp.text
    if field is not None:
        assert body.get("field") == field, body
        assert field in body["detail"], body
    return body  # type: ignore[no-any-return]


async def recommend(client: AsyncTestClient[Litestar], headers: dict[str, str], user_id: int, **params: Any) -> Any:
    """GET /movies/recommendations for `user_id`, asserting a 200; the JSON body."""
    resp = await client.get("/movies/recommendations", params={"user_id": user_id, **params}, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()
