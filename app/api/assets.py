"""Static assets served by the app itself, so the API docs and the dashboard work offline.

- Swagger UI and Redoc come from `drf-spectacular-sidecar` (a data-only PyPI package that ships
  swagger-ui-dist and Redoc's standalone bundle; installed with --no-deps, see the Makefile). Its
  files are found with importlib, never imported: the package's Django app is not used.
- The dashboard's own page and script live in `app/api/static/dashboard/`.
Every asset route is public (no token): they hold no data, only code that asks for a token.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, RedocRenderPlugin, SwaggerRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router

STATIC_PREFIX = "/static"
DASHBOARD_DIR = Path(__file__).parent / "static" / "dashboard"
SIDECAR = "drf_spectacular_sidecar"


def sidecar_dir() -> Path | None:
    """The sidecar package's static folder, or None when the package is not installed."""
    spec = importlib.util.find_spec(SIDECAR)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0]) / "static" / SIDECAR


def asset_routers() -> list[Router]:
    """`/static/swagger-ui/*`, `/static/redoc/*` (when the sidecar is installed) and `/static/dashboard/*`."""
    folders = {"dashboard": DASHBOARD_DIR}
    sidecar = sidecar_dir()
    if sidecar is not None:
        folders |= {"swagger-ui": sidecar / "swagger-ui-dist", "redoc": sidecar / "redoc" / "bundles"}
    return [
        create_static_files_router(
            path=f"{STATIC_PREFIX}/{name}",
            directories=[folder],
            name=f"static-{name}",
            opt={"exclude_from_auth": True},
            include_in_schema=False,
        )
        for name, folder in folders.items()
    ]


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """Swagger UI at /schema and /schema/swagger, Redoc at /schema/redoc, the spec at
    /schema/openapi.json; the UIs load their JavaScript and CSS from this app, not a CDN.

    Swagger UI is the default page: offline it is entirely clean, whereas Redoc's side menu always
    asks cdn.redoc.ly for its "API docs by Redocly" logo (hardcoded in the bundle; the image hides
    itself when that fails, but the browser logs the failed load)."""
    icon = f"<link rel='icon' type='image/png' href='{STATIC_PREFIX}/swagger-ui/favicon-32x32.png'>"
    swagger = f"{STATIC_PREFIX}/swagger-ui"
    return [
        RedocRenderPlugin(
            path="/redoc", js_url=f"{STATIC_PREFIX}/redoc/redoc.standalone.js", google_fonts=False, favicon=icon
        ),
        SwaggerRenderPlugin(
            path=["/", "/swagger"],
            js_url=f"{swagger}/swagger-ui-bundle.js",
            css_url=f"{swagger}/swagger-ui.css",
            standalone_preset_js_url=f"{swagger}/swagger-ui-standalone-preset.js",
            favicon=icon,
        ),
        JsonRenderPlugin(),
    ]
