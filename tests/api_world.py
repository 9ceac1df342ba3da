"""A private API world per test module: a copy of the demo fixture (data dir and database), so the
module's writes stay its own, with the app serving it. A module that needs another world defines
fixtures of the same names, which take precedence over these."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import Engine

from app.settings import Settings


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def settings(
    demo_settings: Settings, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Settings:
    from tests.conftest import copy_settings

    name = request.module.__name__.rsplit(".", 1)[-1]
    return copy_settings(demo_settings, tmp_path_factory.mktemp(name) / "data")


@pytest.fixture(scope="module")
def db(settings: Settings) -> Iterator[Engine]:
    from app.catalog.db import make_engine

    engine = make_engine(settings.sqlalchemy_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
async def client(settings: Settings, text_encoder: Any) -> AsyncIterator[AsyncTestClient[Litestar]]:
    from app.api import create_app

    async with AsyncTestClient(create_app(settings, text_encoder=text_encoder)) as c:
        yield c


@pytest.fixture(scope="module")
def admin(settings: Settings) -> dict[str, str]:
    from tests.test_api import bearer

    return bearer(settings, admin=True)
