"""The OpenAPI document as the API answers: what Litestar's generator leaves out or gets wrong.

`use_api_operation` gives every documented operation the ApiOperation entry, and create_app registers
`closed_struct_schemas()` ahead of Litestar's own Struct schemas.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation, Parameter, Reference, Schema
from litestar.plugins import OpenAPISchemaPlugin
from litestar.routes import BaseRoute, HTTPRoute
from litestar.typing import FieldDefinition

from app.api.schemas import ERROR_STATUSES, ErrorBody

if TYPE_CHECKING:  # private to Litestar: read by the type checker only
    from litestar._openapi.schema_generation import SchemaCreator

log = logging.getLogger(__name__)

# Litestar's own msgspec Struct schemas: private to it (litestar>=2.18,<3 names no public one), so a
# release that moves them costs the closed bodies' schema, never the app's start.
STRUCT_PLUGIN = "litestar._openapi.schema_generation.plugins.struct:StructSchemaPlugin"

# What any operation may answer before its handler runs, whatever it declares.
COMMON_STATUSES = {
    400: ERROR_STATUSES[400] + " (any operation: a query parameter it does not take)",
    431: "The request line and headers are larger than the server takes (MOVIEREC_MAX_HEADER_BYTES)",
}
BODY_TOO_LARGE = {413: "The body is larger than the server takes (MOVIEREC_MAX_BODY_BYTES)"}
# Where a token is checked: a worker that has not read the token revocations answers user tokens 503.
TOKEN_CHECKED = {503: ERROR_STATUSES[503]}
PUBLIC: list[dict[str, list[str]]] = [{}]  # the security of an operation that needs no token


@dataclass
class ApiOperation(Operation):
    """An operation's OpenAPI entry as the API answers it, beyond what its handler declares: the
    COMMON_STATUSES (413 where it takes a body, 503 where it checks a token), and `allowEmptyValue`
    on the optional query parameters, since an empty one is unset (`year_min=`, strict_input.py).
    Litestar's generator wrote `allowEmptyValue: false` everywhere and left 400 off `GET /genres`,
    which refuses `?x=1`."""

    def __post_init__(self) -> None:
        for param in self.parameters or []:
            if isinstance(param, Parameter) and param.param_in == "query" and not param.required:
                param.allow_empty_value = True
        if self.responses is None:
            return
        statuses = COMMON_STATUSES | (BODY_TOO_LARGE if self.request_body else {})
        statuses |= TOKEN_CHECKED if self.security != PUBLIC else {}
        content = {"application/json": OpenAPIMediaType(schema=Reference(f"#/components/schemas/{ErrorBody.__name__}"))}
        for code, text in statuses.items():
            self.responses.setdefault(str(code), OpenAPIResponse(description=text, content=content))


class ClosedStructSchemaPlugin(OpenAPISchemaPlugin):
    """Litestar's schema of a msgspec Struct (`structs`, its own plugin), with
    `additionalProperties: false` where the Struct forbids unknown fields (the request bodies: an
    unknown field is a 400 naming it)."""

    __slots__ = ("structs",)

    def __init__(self, structs: OpenAPISchemaPlugin) -> None:
        self.structs = structs

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return self.structs.is_plugin_supported_field(field_definition)

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = self.structs.to_openapi_schema(field_definition, schema_creator)
        if field_definition.type_.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False
        return schema


def closed_struct_schemas(where: str = STRUCT_PLUGIN) -> list[OpenAPISchemaPlugin]:
    """[ClosedStructSchemaPlugin] over Litestar's Struct plugin at `where` ('module:Class'), or []
    and one warning when this Litestar has none there: the schema then leaves `additionalProperties`
    unset on the bodies, and the API answers the same."""
    module, _, name = where.partition(":")
    try:
        structs = getattr(importlib.import_module(module), name)()
    except (ImportError, AttributeError) as exc:
        log.warning(
            "OpenAPI: no %s in this Litestar (%s): body schemas do not say they refuse unknown fields",
            where,
            exc,
        )
        return []
    return [ClosedStructSchemaPlugin(structs)]


def use_api_operation(routes: Iterable[BaseRoute]) -> None:
    """Give every documented HTTP handler of `routes` the ApiOperation entry (one that sets its own
    operation class subclasses it). Call once the app is built: its schema is generated later."""
    for route in routes:
        for handler in route.route_handlers if isinstance(route, HTTPRoute) else []:
            if handler.resolve_include_in_schema() and not issubclass(handler.operation_class, ApiOperation):
                handler.operation_class = ApiOperation
