"""Static assets served by the app itself, so the API docs and the dashboard work offline.

- Swagger UI and Redoc come from `drf-spectacular-sidecar` (a data-only PyPI package that ships
  swagger-ui-dist and Redoc's standalone bundle; installed with --no-deps, see the Makefile). Its
  files are found with importlib, never imported: the package's Django app is not used.
  Redoc's bundle hardcodes its side menu's logo on cdn.redoc.ly: the app serves a copy whose logo
  is an inline blank image instead (`/static/redoc-offline/`), so the page asks no other host.
- The dashboard's own page and script live in `app/api/static/dashboard/`.
Every asset route is public (no token): they hold no data, only code that asks for a token.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, RedocRenderPlugin, SwaggerRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router

STATIC_PREFIX = "/static"
DASHBOARD_DIR = Path(__file__).parent / "static" / "dashboard"
SIDECAR = "drf_spectacular_sidecar"
REDOC_JS = f"{STATIC_PREFIX}/redoc-offline/redoc.standalone.js"
REDOC_CDN_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
BLANK_IMAGE = b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/%3E"


def sidecar_dir() -> Path | None:
    """The sidecar package's static folder, or None when the package is not installed."""
    spec = importlib.util.find_spec(SIDECAR)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0]) / "static" / SIDECAR


@functools.cache
def offline_redoc_bundle() -> bytes:
    """Redoc's standalone bundle with its hardcoded cdn.redoc.ly logo replaced by a blank inline image."""
    sidecar = sidecar_dir()
    if sidecar is None:
        raise FileNotFoundError(SIDECAR)
    return (sidecar / "redoc" / "bundles" / "redoc.standalone.js").read_bytes().replace(REDOC_CDN_LOGO, BLANK_IMAGE)


@get(REDOC_JS, exclude_from_auth=True, include_in_schema=False, media_type="text/javascript", sync_to_thread=True)
def redoc_bundle() -> Response[bytes]:
    return Response(offline_redoc_bundle(), media_type="text/javascript", headers={"Cache-Control": "max-age=3600"})


def asset_handlers() -> list[Router | HTTPRouteHandler]:
    """The static folders below, and Redoc's bundle without its CDN logo when the sidecar is installed."""
    routers: list[Router | HTTPRouteHandler] = [*asset_routers()]
    return [*routers, redoc_bundle] if sidecar_dir() is not None else routers


def asset_routers() -> list[Router]:
    """`/static/swagger-ui/*` (when the sidecar is installed) and `/static/dashboard/*` (Redoc's bundle is
    served by `redoc_bundle`, without its CDN logo)."""
    folders = {"dashboard": DASHBOARD_DIR}
    sidecar = sidecar_dir()
    if sidecar is not None:
        folders |= {"swagger-ui": sidecar / "swagger-ui-dist"}
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

    Redoc's bundle comes from `redoc_bundle` (its side menu's cdn.redoc.ly logo replaced), so
    neither page asks another host."""
    icon = f"<link rel='icon' type='image/png' href='{STATIC_PREFIX}/swagger-ui/favicon-32x32.png'>"
    swagger = f"{STATIC_PREFIX}/swagger-ui"
    return [
        RedocRenderPlugin(path="/redoc", js_url=REDOC_JS, google_fonts=False, favicon=icon),
        SwaggerRenderPlugin(
            path=["/", "/swagger"],
            js_url=f"{swagger}/swagger-ui-bundle.js",
            css_url=f"{swagger}/swagger-ui.css",
            standalone_preset_js_url=f"{swagger}/swagger-ui-standalone-preset.js",
            favicon=icon,
        ),
        JsonRenderPlugin(),
    ]
