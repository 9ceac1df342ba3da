"""The dashboard end to end: the demo-sized index served by uvicorn, the admin JSON it reads, and the
page itself in headless Chromium (no network but 127.0.0.1), with `movierec eval --save`'s real report."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from app.api import create_app
from app.catalog.db import make_engine
from app.catalog.models import Rating
from app.settings import Settings
from tests.helpers.api import bearer
from tests.helpers.browser import Browser, find_chromium
from tests.helpers.server import serve
from tests.helpers.worlds import DEMO_LIMIT, copy_settings

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = find_chromium()
ADMIN_ROUTES = (
    "/dashboard/api/index",
    "/dashboard/api/movies/1",
    "/dashboard/api/map/combined",
    "/dashboard/api/map/collab",
    "/dashboard/api/quality",
    "/dashboard/api/service",
)
# Set to refresh the README's screenshot (docs/dashboard.png) from this test's run.
SCREENSHOT_ENV = "MOVIEREC_DOCS_SCREENSHOT"


@pytest.fixture(scope="module")
def saved_report(eval_data_dir: Path) -> Path:
    """`movierec eval --save` on a 30-user sample of ml-100k: the real report the Quality page shows."""
    env = {**os.environ, "MOVIEREC_DATA_DIR": str(eval_data_dir), "MOVIEREC_DEVICE": "cpu"}
    env.pop("QDRANT_URL", None)
    cmd = [sys.executable, "-m", "movierec.cli", "eval", "--dataset", "ml-100k", "--users", "30", "--json", "--save"]
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    saved = Settings(data_dir=eval_data_dir).eval_report_path
    import json

    printed = json.loads(out.stdout.strip().splitlines()[-1])
    stored = json.loads(saved.read_text())
    assert stored.pop("saved_at") > 0
    assert stored == printed  # --save writes exactly what --json prints
    return saved


@pytest.fixture(scope="module")
def dash_settings(demo_settings: Settings, saved_report: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = copy_settings(demo_settings, tmp_path_factory.mktemp("dashboard") / "data")
    settings.eval_report_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(saved_report, settings.eval_report_path)
    return settings


@pytest.fixture(scope="module")
def base_url(dash_settings: Settings, text_encoder: Any):
    with serve(create_app(dash_settings, text_encoder=text_encoder)) as url:
        yield url


@pytest.fixture(scope="module")
def admin(dash_settings: Settings) -> dict[str, str]:
    return bearer(dash_settings, admin=True)


@pytest.fixture(scope="module")
def heavy_user(dash_settings: Settings) -> int:
    """The fixture's user with the most ratings: every strategy has something to work with."""
    engine = make_engine(dash_settings.sqlalchemy_url)
    with Session(engine) as s:
        user = s.exec(
            select(Rating.user_id).group_by(Rating.user_id).order_by(func.count().desc(), Rating.user_id).limit(1)
        ).one()
    engine.dispose()
    return int(user)


def test_admin_json_needs_an_admin_token(base_url: str, dash_settings: Settings, admin: dict[str, str]) -> None:
    user = bearer(dash_settings, user_id=15)
    for route in ADMIN_ROUTES:
        assert httpx.get(base_url + route).status_code == 401, route
        forbidden = httpx.get(base_url + route, headers=user)
        assert forbidden.status_code == 403, route
        assert forbidden.json()["detail"] == "the dashboard needs an admin token"
        assert httpx.get(base_url + route, headers=admin).status_code == 200, route
    assert httpx.get(base_url + "/dashboard").status_code == 200  # the page itself holds no data


def test_index_movie_and_map_json(base_url: str, admin: dict[str, str]) -> None:
    index = httpx.get(base_url + "/dashboard/api/index", headers=admin).json()
    assert index["points"] == DEMO_LIMIT and index["engine"] == "edge"
    assert {v["name"]: v["dim"] for v in index["vectors"]} == {
        "text": 384,
        "image": 1280,
        "combined": 768,
        "collab": 256,
    }
    fields = {f["name"]: f["indexed"] for f in index["payload_fields"]}
    assert fields["genres"] and fields["year"] and not fields["title"]
    assert index["coverage"]["coverage"] == 1.0
    assert "maps" not in index["manifest"]["stats"]  # shown as counts, not as thousands of coordinates
    assert index["maps"]["combined"] == DEMO_LIMIT

    movie = httpx.get(base_url + "/dashboard/api/movies/1", headers=admin).json()
    assert movie["payload"]["title"] == "Toy Story"
    assert abs(movie["norms"]["text"] - 1.0) < 1e-3 and "image" not in movie["norms"]  # the demo has no posters
    assert movie["neighbours"]["image"] is None
    for name in ("text", "combined", "collab"):
        ids = [n["movie_id"] for n in movie["neighbours"][name]]
        assert len(ids) == 10 and 1 not in ids, name
    assert httpx.get(base_url + "/dashboard/api/movies/999999999", headers=admin).status_code == 404

    combined = httpx.get(base_url + "/dashboard/api/map/combined", headers=admin).json()
    collab = httpx.get(base_url + "/dashboard/api/map/collab", headers=admin).json()
    assert len(combined["points"]) == DEMO_LIMIT
    assert len(collab["points"]) == index["manifest"]["stats"]["collab_vectors"]
    xs = [p[1] for p in combined["points"]]
    assert max(abs(x) for x in xs) == 1.0 and len(set(xs)) > DEMO_LIMIT // 2  # scaled, and spread out
    bad = httpx.get(base_url + "/dashboard/api/map/nope", headers=admin)
    assert bad.status_code == 400 and bad.json()["field"] == "space"


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (.ci/run installs Debian's chromium)")
def test_dashboard_in_chromium(
    base_url: str, dash_settings: Settings, heavy_user: int, tmp_path: Path, admin: dict[str, str]
) -> None:
    token = admin["Authorization"].removeprefix("Bearer ")
    shots: dict[str, Path] = {}
    with Browser(CHROMIUM) as b:  # type: ignore[arg-type]
        b.goto(base_url + "/dashboard")
        b.evaluate(f"document.getElementById('token').value = {token!r}")
        b.evaluate("document.querySelector('#login-form button').click()")
        # Index: the real point count, from the served index.
        assert b.wait_for("document.getElementById('index-points')?.textContent") == str(DEMO_LIMIT)
        assert b.evaluate("sessionStorage.getItem('movierec.token')") == token
        shots["index"] = b.screenshot(tmp_path / "index.png")

        b.evaluate("location.hash = '#movies'; document.getElementById('movie-query').value = 'Toy Story'")
        b.evaluate("document.querySelector('#movie-form button').click()")
        b.wait_for("document.querySelectorAll('ol.neighbours li').length >= 30")
        assert "Toy Story" in b.evaluate("document.getElementById('movie-title').textContent")
        lists = b.evaluate("[...document.querySelectorAll('ol.neighbours')].map(o => o.dataset.vector)")
        assert lists == ["text", "combined", "collab"]  # no image vector: the demo has no posters
        shots["movies"] = b.screenshot(tmp_path / "movies.png")

        b.evaluate("location.hash = '#map'")
        drawn = b.wait_for(
            "[...document.querySelectorAll('.map svg')].map(s => s.querySelectorAll('circle').length)"
            ".filter(n => n >= 100).length === 2 && "
            "[...document.querySelectorAll('.map svg')].map(s => s.querySelectorAll('circle').length)"
        )
        assert drawn[0] == DEMO_LIMIT and drawn[1] >= 100
        assert b.evaluate("document.querySelector('.map circle title').textContent").strip()
        shots["map"] = b.screenshot(tmp_path / "map.png")

        b.evaluate(f"location.hash = '#users'; document.getElementById('user-id').value = '{heavy_user}'")
        b.evaluate("document.querySelector('#user-form button').click()")
        b.wait_for(
            "document.querySelectorAll('ol.recs').length === 3 && "
            "[...document.querySelectorAll('ol.recs')].every(o => o.children.length === 10)"
        )
        assert b.evaluate("document.querySelectorAll('#user-ratings tr').length") > 10
        paths = b.evaluate("[...document.querySelectorAll('#user-recs .path')].map(e => e.textContent)")
        assert paths == ["path: content", "path: collab", "path: hybrid"]
        b.evaluate("document.querySelector('ol.recs li').click()")
        assert "matches your taste" in b.wait_for("document.getElementById('explain-sentence')?.textContent")
        # Each list's item is explained under that list's strategy: the sentence gives the item's own reason.
        for strategy in ("content", "collab", "hybrid"):
            item = f"document.querySelector('ol.recs[data-strategy={strategy}] li:nth-child(2)')"
            reason = b.evaluate(f"{item}.title")
            b.evaluate("document.getElementById('user-explain').replaceChildren()")  # not the last sentence
            b.evaluate(f"{item}.click()")
            shown = f"document.querySelector('#explain-sentence[data-strategy={strategy}]')?.textContent"
            assert f": {reason};" in b.wait_for(shown), (strategy, reason)
        shots["users"] = b.screenshot(tmp_path / "users.png")

        b.evaluate("location.hash = '#quality'")
        bars = b.wait_for("document.querySelectorAll('#quality-chart rect[data-strategy]').length")
        assert bars >= 12  # six strategies, two slices (all users, cold start)
        shots["quality"] = b.screenshot(tmp_path / "quality.png")

        b.evaluate("location.hash = '#service'")
        assert b.wait_for("document.getElementById('service-workers')?.textContent") == "1"
        # The server sampled its histograms at start, before this test's requests: the window holds them.
        row = b.wait_for(
            "[...document.querySelectorAll('#service-routes tr')].map(tr => [...tr.children].map(td => td.textContent))"
            ".find(cells => cells[0] === 'GET /movies/recommendations')"
        )
        assert int(row[2]) >= 3 and float(row[3]) > 0 and float(row[4]) >= float(row[3])  # requests, p50, p99
        shots["service"] = b.screenshot(tmp_path / "service.png")
        b.pump(0.5)
        assert b.errors == []
    assert all(p.stat().st_size > 10_000 for p in shots.values())
    if os.environ.get(SCREENSHOT_ENV):
        _save_docs_screenshot(shots["map"], ROOT / "docs" / "dashboard.png")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (.ci/run installs Debian's chromium)")
def test_a_token_that_expires_logs_the_page_out_saying_why(base_url: str, dash_settings: Settings) -> None:
    """Logged in with a token that then expires: the next page asks for a token again and says it
    expired, rather than showing a 401 in every section."""
    import jwt

    from app.auth import signing_key

    now = datetime.now(UTC)
    claims = {"sub": "admin", "iat": now, "exp": now + timedelta(seconds=4)}
    token = jwt.encode(claims, signing_key(dash_settings), "HS256")
    with Browser(CHROMIUM) as b:  # type: ignore[arg-type]
        assert log_in(b, base_url, token) == str(DEMO_LIMIT)
        b.pump(max(0.0, (claims["exp"] - datetime.now(UTC)).total_seconds()) + 1)
        b.evaluate("location.hash = '#quality'")
        why = b.wait_for(
            "!document.getElementById('login').hidden && document.getElementById('login-error').textContent"
        )
        assert "expired" in why and "token create" in why, why
        assert b.evaluate("sessionStorage.getItem('movierec.token')") is None
        assert b.evaluate("document.getElementById('nav').hidden")
        b.evaluate(f"document.getElementById('token').value = {token!r}")  # the same token again: refused, saying why
        b.evaluate("document.querySelector('#login-form button').click()")
        b.pump(1)
        assert "expired" in b.evaluate("document.getElementById('login-error').textContent")


def log_in(b: Browser, base_url: str, token: str) -> str:
    """Open the dashboard and log in with `token`; returns the Index page's point count once shown."""
    b.goto(base_url + "/dashboard")
    b.evaluate(f"document.getElementById('token').value = {token!r}")
    b.evaluate("document.querySelector('#login-form button').click()")
    shown: str = b.wait_for("document.getElementById('index-points')?.textContent")
    return shown


def _save_docs_screenshot(source: Path, target: Path) -> None:
    """A small PNG for the README: a 64-colour palette keeps it well under 200 KB."""
    from PIL import Image

    with Image.open(source) as image:
        image.convert("RGB").quantize(colors=64).save(target, optimize=True)


def test_maps_sample_the_same_movies_in_every_space(demo_settings: Settings) -> None:
    from app.embedding.collab import factor_part
    from app.vectorstore import content_hashes, open_store
    from app.vectorstore.maps import project_maps, unit_rows

    index = open_store(demo_settings).open()
    try:
        ids = sorted(content_hashes(index))
        transforms = {"collab": lambda m: unit_rows(factor_part(m))}
        maps = project_maps(index, ids, max_points=50, transforms=transforms)
        again = project_maps(index, ids, max_points=50, transforms=transforms)
    finally:
        index.close()
    assert maps == again  # seeded: a re-ingest of the same data draws the same map
    assert len(maps["combined"]["ids"]) == 50 and set(maps["combined"]["ids"]) <= set(ids)
    assert set(maps["collab"]["ids"]) <= set(maps["combined"]["ids"])  # one sample for every space
    for m in maps.values():
        assert len(m["xy"]) == len(m["ids"])
        assert max(abs(c) for xy in m["xy"] for c in xy) == 1.0
        first, second = m["explained_variance"]
        assert 0 < second <= first < 1


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (.ci/run installs Debian's chromium)")
def test_a_narrow_window_shows_every_page_without_scrolling_sideways(
    base_url: str, heavy_user: int, admin: dict[str, str]
) -> None:
    """A phone-sized window (360 px): the side-by-side columns stack, long titles wrap, so nothing on
    any page (the Users page's recommendations included) sits off the right edge."""
    token = admin["Authorization"].removeprefix("Bearer ")
    with Browser(CHROMIUM, width=360, height=740) as b:  # type: ignore[arg-type]
        b.send("Emulation.setDeviceMetricsOverride", width=360, height=740, deviceScaleFactor=1, mobile=True)
        b.goto(base_url + "/dashboard")
        overflow = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        wide = {"login": b.evaluate(overflow)}
        b.evaluate(f"document.getElementById('token').value = {token!r}")
        b.evaluate("document.querySelector('#login-form button').click()")
        b.wait_for("document.getElementById('index-points')?.textContent")
        b.evaluate("location.hash = '#movies'; document.getElementById('movie-query').value = '1'")
        b.evaluate("document.querySelector('#movie-form button').click()")
        b.wait_for("document.querySelectorAll('ol.neighbours li').length >= 30")
        b.evaluate(f"location.hash = '#users'; document.getElementById('user-id').value = '{heavy_user}'")
        b.evaluate("document.querySelector('#user-form button').click()")
        b.wait_for("document.querySelectorAll('ol.recs li').length === 30")
        for page in ("index", "movies", "map", "users", "quality", "service"):
            b.evaluate(f"location.hash = '#{page}'")
            b.pump(0.5)
            wide[page] = b.evaluate(overflow)
        assert wide == dict.fromkeys(wide, 0)
        b.pump(0.5)
        assert b.errors == []


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (.ci/run installs Debian's chromium)")
def test_a_slow_answer_for_an_earlier_query_never_replaces_the_later_one(
    base_url: str, heavy_user: int, admin: dict[str, str]
) -> None:
    """Users: one user asked for, then another before the first answered: when the first user's answers
    arrive last, the page still shows the second user's ratings and recommendations (not one user's
    ratings beside another's lists). Movies likewise: a title search overtaken by an id."""
    token = admin["Authorization"].removeprefix("Bearer ")
    other = 15 if heavy_user != 15 else 16
    with Browser(CHROMIUM) as b:  # type: ignore[arg-type]
        log_in(b, base_url, token)
        b.evaluate(f"location.hash = '#users'; document.getElementById('user-id').value = '{other}'")
        b.evaluate("document.querySelector('#user-form button').click()")
        b.wait_for("document.querySelectorAll('ol.recs li').length === 30")
        expected = b.evaluate("document.getElementById('page-users').innerText")

        b.hold(f"*/users/{heavy_user}/*", f"*user_id={heavy_user}&*")
        b.evaluate(f"document.getElementById('user-id').value = '{heavy_user}'")
        b.evaluate("document.querySelector('#user-form button').click()")
        b.evaluate(f"document.getElementById('user-id').value = '{other}'")
        b.evaluate("document.querySelector('#user-form button').click()")
        b.wait_for("document.querySelectorAll('ol.recs li').length === 30")
        b.release()
        b.pump(1.5)
        assert b.evaluate("document.getElementById('page-users').innerText") == expected

        b.evaluate("location.hash = '#movies'")
        b.hold("*/movies/search?*")
        b.evaluate("document.getElementById('movie-query').value = 'Toy Story'")
        b.evaluate("document.querySelector('#movie-form button').click()")
        b.evaluate("document.getElementById('movie-query').value = '2'")
        b.evaluate("document.querySelector('#movie-form button').click()")
        b.wait_for("document.getElementById('movie-detail').dataset.movieId === '2'")
        b.release()
        b.pump(1.5)
        assert b.evaluate("document.getElementById('movie-detail').dataset.movieId") == "2"
        assert b.evaluate("document.getElementById('movie-matches').textContent") == ""
        assert b.errors == []


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (.ci/run installs Debian's chromium)")
def test_odd_input_is_answered_in_words_naming_what_is_wrong(base_url: str, admin: dict[str, str]) -> None:
    """A token of blanks, a user id with a slash (which the path would take as two segments: a bare
    '404: Not Found') and a movie query of blanks are answered with what is wrong, not with a header
    rule, a missing route or the API's 400."""
    token = admin["Authorization"].removeprefix("Bearer ")
    with Browser(CHROMIUM) as b:  # type: ignore[arg-type]
        b.goto(base_url + "/dashboard")
        b.evaluate("document.getElementById('token').value = '   '")
        b.evaluate("document.querySelector('#login-form button').click()")
        assert "paste" in b.wait_for("document.getElementById('login-error').textContent")
        b.evaluate(f"document.getElementById('token').value = {token!r}")
        b.evaluate("document.querySelector('#login-form button').click()")
        b.wait_for("document.getElementById('index-points')?.textContent")
        for typed in ("15/16", "15/../16", "<b>1</b>"):
            b.evaluate(f"location.hash = '#users'; document.getElementById('user-id').value = {typed!r}")
            b.evaluate("document.querySelector('#user-form button').click()")
            shown = b.wait_for("document.querySelector('#user-ratings .error')?.textContent")
            assert "user_id must be an integer" in shown and typed in shown, shown
            assert b.evaluate("document.getElementById('user-recs').children.length") == 0
        # blanks pass the input's `required`: a word, not the API's "400: invalid q" for `q=`
        b.evaluate("location.hash = '#movies'; document.getElementById('movie-query').value = '   '")
        b.evaluate("document.querySelector('#movie-form button').click()")
        assert "type a title" in b.wait_for("document.getElementById('movie-matches').textContent")
        assert b.errors == []


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (.ci/run installs Debian's chromium)")
def test_a_users_ratings_are_paged_through_to_the_oldest(base_url: str, heavy_user: int, admin: dict[str, str]) -> None:
    """A user with more ratings than a page: 'older' and 'newer' walk every rating, latest first (only
    the latest 50 were shown, with no way to the others)."""
    ratings = f"{base_url}/users/{heavy_user}/ratings?limit=100"
    every = httpx.get(ratings, headers=admin).json()
    assert every["total"] > 100  # three pages at least
    for offset in range(100, every["total"], 100):
        every["items"] += httpx.get(f"{ratings}&offset={offset}", headers=admin).json()["items"]
    titles = [r["title"] for r in every["items"]]
    assert len(titles) == every["total"]
    token = admin["Authorization"].removeprefix("Bearer ")
    rows = "[...document.querySelectorAll('#user-ratings tr')].slice(1).map(tr => tr.children[0].textContent)"
    with Browser(CHROMIUM) as b:  # type: ignore[arg-type]
        log_in(b, base_url, token)
        b.evaluate(f"location.hash = '#users'; document.getElementById('user-id').value = '{heavy_user}'")
        b.evaluate("document.querySelector('#user-form button').click()")
        b.wait_for("document.getElementById('ratings-older') !== null")
        assert b.evaluate("document.getElementById('ratings-newer')") is None
        seen = b.evaluate(rows)
        while b.evaluate("document.getElementById('ratings-older') !== null"):
            b.evaluate("document.getElementById('ratings-older').click()")
            b.wait_for(f"document.querySelector('#user-ratings caption')?.textContent.includes(', {len(seen) + 1}–')")
            seen += b.evaluate(rows)
        assert seen == titles
        caption = b.evaluate("document.querySelector('#user-ratings caption').textContent")
        assert caption.startswith(f"{every['total']} ratings, ") and f"–{every['total']} " in caption
        last_start = (every["total"] - 1) // 50 * 50
        b.evaluate("document.getElementById('ratings-newer').click()")
        b.wait_for("document.getElementById('ratings-older') !== null")
        assert b.evaluate(rows) == titles[last_start - 50 : last_start]
        assert b.errors == []


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (.ci/run installs Debian's chromium)")
def test_a_server_that_does_not_answer_is_said_in_words(base_url: str, admin: dict[str, str]) -> None:
    """The server gone (connection refused): the page says the server did not answer, not the
    browser's 'Failed to fetch'."""
    token = admin["Authorization"].removeprefix("Bearer ")
    with Browser(CHROMIUM) as b:  # type: ignore[arg-type]
        log_in(b, base_url, token)
        b.hold("*/dashboard/api/map/*")
        b.evaluate("location.hash = '#map'")
        b.release(fail="ConnectionRefused")
        shown = b.wait_for("document.querySelector('#map-combined .error')?.textContent")
        assert "server did not answer" in shown, shown
        assert b.evaluate("document.getElementById('login').hidden")  # still logged in: the token is not at fault


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (.ci/run installs Debian's chromium)")
def test_log_out_forgets_the_token_and_what_was_shown(base_url: str, heavy_user: int, admin: dict[str, str]) -> None:
    """After 'Log out' the login box is empty (it kept the admin token: one click logged back in) and
    the page no longer holds the last session's data (a user's ratings stayed in the hidden sections)."""
    token = admin["Authorization"].removeprefix("Bearer ")
    with Browser(CHROMIUM) as b:  # type: ignore[arg-type]
        log_in(b, base_url, token)
        assert b.evaluate("document.getElementById('token').value") == ""  # not left on the page once used
        b.evaluate(f"location.hash = '#users'; document.getElementById('user-id').value = '{heavy_user}'")
        b.evaluate("document.querySelector('#user-form button').click()")
        b.wait_for("document.querySelectorAll('ol.recs li').length === 30")
        rated = b.evaluate("document.querySelector('#user-ratings td').textContent")
        b.evaluate("document.getElementById('logout').click()")
        b.wait_for("!document.getElementById('login').hidden")
        assert b.evaluate("document.getElementById('token').value") == ""
        assert rated not in b.evaluate("document.querySelector('main').textContent")
        assert b.evaluate("document.getElementById('user-id').value") == ""
        shown = "document.querySelectorAll('main .page:not(#login) td, main .page:not(#login) li').length"
        assert b.evaluate(shown) == 0
        assert b.errors == []


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (.ci/run installs Debian's chromium)")
def test_an_answer_arriving_after_log_out_is_not_drawn(base_url: str, admin: dict[str, str]) -> None:
    """The Map's data asked for, then 'Log out' before it came: the page stays empty of it."""
    token = admin["Authorization"].removeprefix("Bearer ")
    with Browser(CHROMIUM) as b:  # type: ignore[arg-type]
        log_in(b, base_url, token)
        b.hold("*/dashboard/api/map/*", "*/dashboard/api/quality")
        b.evaluate("location.hash = '#map'")
        b.pump(0.3)
        b.evaluate("location.hash = '#quality'")
        b.pump(0.3)
        b.evaluate("document.getElementById('logout').click()")
        b.release()
        b.pump(1.5)
        assert b.evaluate("document.querySelectorAll('.map circle, #quality-chart rect').length") == 0
        assert b.evaluate("document.getElementById('quality-meta').textContent") == ""
        assert b.errors == []


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (.ci/run installs Debian's chromium)")
def test_a_user_with_no_ratings(base_url: str, admin: dict[str, str]) -> None:
    """A user nobody has seen: no ratings said in words, popular lists, and an explanation without an
    empty 'closest rated movie' table under it."""
    token = admin["Authorization"].removeprefix("Bearer ")
    with Browser(CHROMIUM) as b:  # type: ignore[arg-type]
        log_in(b, base_url, token)
        b.evaluate("location.hash = '#users'; document.getElementById('user-id').value = '987654321'")
        b.evaluate("document.querySelector('#user-form button').click()")
        b.wait_for("document.querySelectorAll('ol.recs li').length === 30")
        assert b.evaluate("document.querySelector('#user-ratings caption').textContent").startswith("0 ratings")
        b.evaluate("document.querySelector('ol.recs li').click()")
        assert "no ratings yet" in b.wait_for("document.getElementById('explain-sentence')?.textContent")
        assert b.evaluate("document.querySelectorAll('#user-explain table').length") == 0
        assert b.errors == []


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (.ci/run installs Debian's chromium)")
def test_back_forward_and_reload_keep_the_movie_and_the_user_shown(
    base_url: str, heavy_user: int, admin: dict[str, str]
) -> None:
    """The movie or user shown is in the address (#movies/1, #users/15): Back after following a
    neighbour returns to the movie before it, Forward comes back, and a reload shows the same one."""
    token = admin["Authorization"].removeprefix("Bearer ")
    shown_movie = "document.getElementById('movie-detail').dataset.movieId"
    with Browser(CHROMIUM) as b:  # type: ignore[arg-type]
        log_in(b, base_url, token)
        b.evaluate("location.hash = '#movies'; document.getElementById('movie-query').value = '1'")
        b.evaluate("document.querySelector('#movie-form button').click()")
        b.wait_for("location.hash === '#movies/1'")
        b.evaluate("document.querySelector('ol.neighbours li').click()")
        neighbour = b.wait_for(f"{shown_movie} !== '1' && {shown_movie}")
        assert b.evaluate("location.hash") == f"#movies/{neighbour}"
        b.evaluate("history.back()")
        b.wait_for(f"{shown_movie} === '1' && document.querySelectorAll('ol.neighbours li').length >= 30")
        b.evaluate("history.forward()")
        b.wait_for(f"{shown_movie} === {neighbour!r}")

        b.evaluate(f"location.hash = '#users'; document.getElementById('user-id').value = '{heavy_user}'")
        b.evaluate("document.querySelector('#user-form button').click()")
        b.wait_for(f"location.hash === '#users/{heavy_user}'")
        b.goto(base_url + f"/dashboard#users/{heavy_user}")  # a reload: still logged in (sessionStorage)
        b.wait_for("document.querySelectorAll('ol.recs li').length === 30")
        assert b.evaluate("document.getElementById('user-id').value") == str(heavy_user)
        assert b.evaluate("document.querySelector('nav a.active').hash") == "#users"
        assert b.errors == []
