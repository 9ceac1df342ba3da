"""The Litestar REST API: `create_app()` assembles controllers, auth, error mapping and the lifespan."""

from __future__ import annotations

from app.api.app import create_app

__all__ = ["create_app"]
