"""Swagger UI, Redoc and the raw spec work with no internet: their assets come from the app."""

from __future__ import annotations

import re
from typing import Any

import pytest

from app.api import create_app
from tests.helpers.browser import Browser, find_chromium
from tests.helpers.server import serve
from tests.helpers.worlds import make_settings

CHROMIUM = find_chromium()


@pytest.fixture(scope="module")
def docs_url(tmp_path_factory: pytest.TempPathFactory, text_encoder: Any):
    # The docs need no index: an empty data dir is enough (the API answers 503 on data routes).
    settings = make_settings(tmp_path_factory.mktemp("docs"))
    with serve(create_app(settings, text_encoder=text_encoder)) as url:
        yield url


def test_doc_pages_reference_only_local_assets(docs_url: str) -> None:
    import httpx

    for page in ("/schema", "/schema/swagger", "/schema/redoc"):
        html = httpx.get(docs_url + page).text
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        assert urls, page
        assert all(u.startswith("/static/") for u in urls), (page, urls)
        for u in urls:
            assert httpx.get(docs_url + u).status_code == 200, u
    spec = httpx.get(docs_url + "/schema/openapi.json").json()
    assert "/movies/recommendations" in spec["paths"]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (.ci/run installs Debian's chromium)")
def test_swagger_renders_offline_in_chromium(docs_url: str, tmp_path) -> None:
    with Browser(CHROMIUM) as browser:  # type: ignore[arg-type]
        browser.goto(docs_url + "/schema/swagger")
        operations = browser.wait_for("document.querySelectorAll('.opblock').length")
        ids = browser.evaluate("[...document.querySelectorAll('.opblock-summary-path')].map(e => e.textContent)")
        browser.screenshot(tmp_path / "swagger.png")
        browser.pump(0.5)
        assert browser.errors == []
        browser.send("Network.enable")
        requested = "performance.getEntriesByType('resource').map(e => e.name).concat([location.href])"
        browser.goto(docs_url + "/schema/redoc")
        browser.wait_for("document.querySelectorAll('[data-section-id]').length > 5")
        browser.wait_for("document.querySelector('.menu-content') !== null")
        browser.pump(0.5)
        # Redoc's bundle hardcodes its side menu's logo on cdn.redoc.ly: the app serves it without that.
        assert browser.errors == []
        assert [u for u in browser.evaluate(requested) if not u.startswith(docs_url)] == []
    assert operations >= 10
    assert any("/movies/recommendations" in i for i in ids)
