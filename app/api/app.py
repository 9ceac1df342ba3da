"""`create_app()`: the Litestar application, assembled by one init plugin in small steps."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins import InitPluginProtocol, OpenAPISchemaPlugin

from app.api import metrics
from app.api.assets import asset_handlers, render_plugins
from app.api.controllers import ROUTES
from app.api.controllers.dashboard import DashboardController, DashboardPageController
from app.api.deps import DEPENDENCIES
from app.api.exceptions import EXCEPTION_HANDLERS
from app.api.head import answer_head, list_allowed_methods
from app.api.index_lease import index_lease
from app.api.openapi import closed_struct_schemas, use_api_operation
from app.api.security import jwt_auth, provide_owner
from app.api.state import make_lifespan
from app.api.strict_input import check_request
from app.embedding.text import QueryEncoder
from app.settings import Settings, get_settings


class ApplicationCore(InitPluginProtocol):
    """Wires OpenAPI, auth, routes, dependencies, error mapping and the lifespan into the app config."""

    def __init__(self, settings: Settings, text_encoder: QueryEncoder | None = None) -> None:
        self.settings = settings
        self.text_encoder = text_encoder

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        self._configure_openapi(app_config)
        self._configure_security(app_config)  # after OpenAPI: it adds the Bearer scheme there
        self._configure_logging(app_config)
        self._configure_routes(app_config)
        self._configure_dependencies(app_config)
        self._configure_exceptions(app_config)
        self._configure_strict_input(app_config)
        self._configure_lifespan(app_config)
        self._configure_index_lease(app_config)
        self._configure_metrics(app_config)
        return app_config

    def _configure_openapi(self, app_config: AppConfig) -> None:
        app_config.openapi_config = OpenAPIConfig(
            title="movierec",
            version=_version(),
            description="Movie recommendations on Qdrant. Send `Authorization: Bearer <token>`.",
            path="/schema",
            use_handler_docstrings=True,
            render_plugins=render_plugins(),  # Swagger UI and Redoc from this app's own assets: offline
        )

    def _configure_security(self, app_config: AppConfig) -> None:
        jwt_auth(self.settings).on_app_init(app_config)
        # The user id a guarded handler acts on: the one `owner_or_admin` authorised.
        app_config.dependencies["owner"] = Provide(provide_owner, sync_to_thread=False)

    def _configure_logging(self, app_config: AppConfig) -> None:
        # Keep the JSON lines `movierec` configures (app/logs.py) instead of Litestar's own format.
        app_config.logging_config = None

    def _configure_routes(self, app_config: AppConfig) -> None:
        app_config.route_handlers.extend(ROUTES)
        app_config.route_handlers.extend([DashboardPageController, DashboardController, *asset_handlers()])

    def _configure_dependencies(self, app_config: AppConfig) -> None:
        app_config.dependencies.update(DEPENDENCIES)

    def _configure_exceptions(self, app_config: AppConfig) -> None:
        app_config.exception_handlers.update(EXCEPTION_HANDLERS)

    def _configure_strict_input(self, app_config: AppConfig) -> None:
        """Unknown query parameters, integers not in digits and bodies that are not strictly their
        type are 400s naming the field, before Litestar's lax parsing reads them (app/api/strict_input.py)."""
        app_config.before_request = check_request

    def _configure_lifespan(self, app_config: AppConfig) -> None:
        app_config.lifespan.append(make_lifespan(self.settings, self.text_encoder, metrics.count_memo_lookup))

    def _configure_metrics(self, app_config: AppConfig) -> None:
        """Prometheus: request metrics (middleware), recommendation paths, store errors, GET /metrics."""
        app_config.middleware.append(metrics.PROMETHEUS.middleware)
        app_config.route_handlers.append(metrics.PrometheusController)
        app_config.after_request = metrics.count_recommendation_path
        app_config.after_exception.append(metrics.count_error)
        app_config.on_startup.append(metrics.worker_started)
        app_config.on_shutdown.append(metrics.worker_stopped)

    def _configure_index_lease(self, app_config: AppConfig) -> None:
        app_config.middleware.append(index_lease)  # a reindex frees the old generation once its requests end


def _version() -> str:
    try:
        return version("movierec")
    except PackageNotFoundError:
        return "0.0.0"


def create_app(settings: Settings | None = None, *, text_encoder: QueryEncoder | None = None) -> Litestar:
    """The API. `text_encoder` injects an already loaded model (tests); otherwise the lifespan loads one."""
    settings = settings or get_settings()
    # The body limit goes to the constructor: Litestar 2.25 ignores it when an init plugin sets it.
    # Larger bodies get 413 before they are read whole; `movierec serve` caps the headers.
    # The Struct schemas here: the plugins given come before Litestar's own.
    plugins: list[InitPluginProtocol | OpenAPISchemaPlugin] = [
        ApplicationCore(settings, text_encoder),
        *closed_struct_schemas(),
    ]
    app = Litestar(plugins=plugins, request_max_body_size=settings.max_body_bytes)
    # HEAD: the GET's status and headers; `Allow`: every method of the path (app/api/head.py)
    app.asgi_handler = answer_head(list_allowed_methods(app.asgi_handler, app.routes))
    use_api_operation(app.routes)  # what every operation may answer, in the OpenAPI schema
    return app
