"""Strict input for every route in the OpenAPI schema, checked before Litestar parses it.

`check_request` is the app's `before_request` hook; it runs after authentication and the guards,
and before Litestar converts the parameters and the body with msgspec's lax rules (which read the
query `limit=1e2` as 100 and the JSON `"4"` as the number 4). It refuses, each time with an
InvalidInputError (400) that names the field:

- a query value that does not percent-decode to UTF-8 (`q=Am%E9lie`, Latin-1): Litestar would read
  it with replacement characters and answer for text the client never sent;
- a query parameter the route does not take (`/movies/1/similar?offset=5`): bodies forbid unknown
  fields too, and a misspelt parameter must not be silently ignored;
- a parameter that takes one value, given twice (`limit=5&limit=7`);
- an integer parameter, in the query or the path, not written in decimal digits (`1e2`, `1.0`,
  `+5`, `05`); Litestar then checks its bounds;
- a JSON body that does not decode strictly to the handler's `data` type: none at all, malformed
  JSON (`NaN`), a number out of range (`1e309`), a string where a number is expected, a missing
  required field or an unknown one, a field given twice (`{"movie_id": 1, "rating": 4, "movie_id": 2}`:
  msgspec keeps the last, so a client's bug rated another movie than the one it named first).

An empty value of an optional query parameter (`year_min=`, as an HTML form sends a blank field)
means the parameter is unset, on every route and for every type: the pair is dropped before Litestar
parses the query, so the default applies. A required parameter given empty (`q=`, `user_id=`) stays
a 400 naming it, and so does an unknown key with an empty value.

Routes outside the schema (the docs pages, the dashboard page, static files) are left alone.
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import unquote_to_bytes

import msgspec
from litestar import Litestar, Request
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute
from litestar.utils.scope.state import ScopeState

from app.api.exceptions import ECHO_CHARS, literal_values, short_echo
from app.errors import InvalidInputError

INTEGER = re.compile(r"0|-?[1-9][0-9]*")  # what Litestar's own int conversion then reads exactly; no "-0"
BODY = "body"
DATA = "data"  # the handler argument Litestar fills with the decoded body
# msgspec's ValidationError ends with the JSON path of the offending value: " - at `$.liked[0]`".
_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_FIRST_KEY = re.compile(r"^\.(?P<key>[^.\[]+)")
# ...and names the field itself when one is missing or unknown (the path is then the object's). The
# name runs to the message's last backtick: a name may hold one ({"a`b": 1} was reported as `a`).
_MISSING = re.compile(r"^Object missing required field `(?P<name>.+)`$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>.+)`$", re.DOTALL)


@dataclass(frozen=True)
class InputRules:
    """What one route handler accepts: its query keys (`singles`: those that take one value;
    `optional`: those with a default, which an empty value leaves unset), the query and path keys
    typed as integers, and its JSON body's type (None: no JSON body)."""

    query: tuple[str, ...]
    singles: frozenset[str]
    integers: frozenset[str]
    optional: frozenset[str] = frozenset()
    body: Any = None


RULES_STATE_KEY = "movierec.input_rules"  # where rules_of keeps them, in the app's state


async def check_request(request: Request[Any, Any, Any]) -> None:
    """The `before_request` hook: raises InvalidInputError (400, naming the field) on input the route
    does not accept; returns None, so the handler runs, otherwise."""
    handler = request.route_handler
    if not isinstance(handler, HTTPRouteHandler) or not handler.resolve_include_in_schema():
        return
    rules = rules_of(request.app).get(handler)
    if rules is None:
        return
    check_encoding(request)
    check_query(request, rules)
    unset_empty_values(request, rules)
    check_integers(request, rules)
    if rules.body is not None:
        check_body(await request.body(), rules.body)


def rules_of(app: Litestar) -> dict[HTTPRouteHandler, InputRules]:
    """The InputRules of every HTTP route handler of `app`, from the parameter models Litestar
    itself parses requests with (a handler's dependencies' parameters included); built once."""
    rules: dict[HTTPRouteHandler, InputRules] | None = app.state.get(RULES_STATE_KEY)
    if rules is None:
        rules = {}
        for route in app.routes:
            if isinstance(route, HTTPRoute):
                for handler, kwargs_model in route.route_handler_map.values():
                    rules[handler] = _rules_for(handler, kwargs_model.expected_query_params, route)
        app.state[RULES_STATE_KEY] = rules
    return rules


def _rules_for(handler: HTTPRouteHandler, query_params: Iterable[Any], route: HTTPRoute) -> InputRules:
    """`query_params`: Litestar's ParameterDefinitions of the route's query (field_alias: the key)."""
    types_by_name = _annotations(handler)
    query = tuple(sorted(p.field_alias for p in query_params))
    singles = frozenset(p.field_alias for p in query_params if not p.is_sequence)
    optional = frozenset(p.field_alias for p in query_params if not p.is_required)
    integers = {p.field_alias for p in query_params if _is_integer(types_by_name.get(p.field_name))}
    integers |= {name for name in route.path_parameters if _is_integer(types_by_name.get(name))}
    body = types_by_name.get(DATA) if DATA in handler.parsed_fn_signature.parameters else None
    return InputRules(query=query, singles=singles, integers=frozenset(integers), optional=optional, body=body)


def _annotations(handler: HTTPRouteHandler) -> dict[str, Any]:
    """Parameter name -> annotation, over the handler and the dependencies it may resolve (a
    dependency's parameters, like `provide_owner`'s `user_id`, are the route's parameters too)."""
    signatures = [p.parsed_fn_signature for p in handler.resolve_dependencies().values()]
    signatures.append(handler.parsed_fn_signature)  # last: the handler's own annotation wins
    return {name: field.annotation for sig in signatures for name, field in sig.parameters.items()}


def _is_integer(annotation: Any) -> bool:
    """int, Annotated[int, ...] or an optional one; never bool."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        arms = [a for a in get_args(annotation) if a is not type(None)]
        return bool(arms) and all(_is_integer(a) for a in arms)
    return annotation is int


def check_encoding(request: Request[Any, Any, Any]) -> None:
    """Every query value percent-decodes to UTF-8, or 400 naming its key. Litestar decodes with
    replacement characters: `q=Am%E9lie` (Latin-1) would be searched as 'Am\ufffdlie', and a lone
    surrogate's bytes (`%ED%A0%80`) as three of them, each answered 200 as if the client had sent that."""
    raw: bytes = request.scope.get("query_string", b"")
    for pair in raw.split(b"&"):
        key, _, value = pair.partition(b"=")
        try:
            unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError as exc:
            name = unquote_to_bytes(key.replace(b"+", b" ")).decode("utf-8", "replace")[:40]
            raise InvalidInputError(
                f"{name} is not UTF-8 text (byte {exc.object[exc.start]:#04x}): percent-encode its UTF-8 bytes, "
                "e.g. %C3%A9 for é",
                field=name,
            ) from None


def check_query(request: Request[Any, Any, Any], rules: InputRules) -> None:
    """Unknown query keys, and repeated keys that take one value: 400 naming the key."""
    query = request.query_params
    for key in query:
        if key not in rules.query:
            takes = f"this route takes {', '.join(rules.query)}" if rules.query else "this route takes none"
            raise InvalidInputError(f"unknown query parameter {key[:40]!r}; {takes}", field=key[:40])
        values = query.getall(key)
        if key in rules.singles and len(values) > 1:
            raise InvalidInputError(f"{key} must be given once, got {len(values)} values", field=key)


def unset_empty_values(request: Request[Any, Any, Any], rules: InputRules) -> None:
    """Drop the pairs of optional query keys whose value is empty (`year_min=`), so the handler gets
    the parameter's default, as when the key is absent.

    Litestar parses a handler's parameters from the query the request has already parsed (the
    connection's and the scope's cache, which the guards fill): both are replaced, and the raw
    `query_string` stays as the client sent it (for the access log). tests/test_api_errors.py's
    empty-value tests fail if a Litestar upgrade stops reading that cache."""
    pairs = tuple(request.query_params.items())  # every (key, value) pair, in the URL's order
    kept = tuple((key, value) for key, value in pairs if value or key not in rules.optional)
    if len(kept) != len(pairs):
        request._parsed_query = kept  # Litestar's own cache: it has no public setter
        ScopeState.from_scope(request.scope).parsed_query = kept


def check_integers(request: Request[Any, Any, Any], rules: InputRules) -> None:
    """Integer parameters (query and path) written in decimal digits, or 400 naming the field."""
    for key, raw in [*request.path_params.items(), *request.query_params.items()]:  # the URL's order
        if key in rules.integers and isinstance(raw, str) and not INTEGER.fullmatch(raw):
            raise InvalidInputError(
                f"invalid {key}: expected an integer in decimal digits (no exponent, decimal point, plus "
                f"sign or leading zero), got {raw[:40]!r}",
                field=key,
            )


def check_body(raw: bytes, data_type: Any) -> None:
    """`raw` must decode strictly (no string for a number, no float for an int) to `data_type`;
    400 naming the offending field, or `body` when no field is at fault."""
    if not raw.strip():
        raise InvalidInputError(f"body is required: {describe(data_type)}", field=BODY)
    try:
        msgspec.json.decode(raw, type=data_type, strict=True)
    except msgspec.ValidationError as exc:
        raise body_error(str(exc), data_type) from None
    except msgspec.DecodeError as exc:  # not JSON at all (NaN and Infinity are not JSON)
        raise InvalidInputError(f"invalid body: {exc}", field=BODY) from None
    # msgspec keeps the last of a repeated key ({"movie_id": 1, "rating": 4, "movie_id": 2} rated movie 2):
    # refused, as a repeated query parameter is. The body is valid JSON by now.
    json.loads(raw, object_pairs_hook=_once_each)


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object_pairs_hook: the object, or 400 naming the first key it holds twice."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            shown = key[:ECHO_CHARS]
            raise InvalidInputError(f"{shown} is given twice in the body: give it once", field=shown)
        seen.add(key)
    return dict(pairs)


def body_error(message: str, data_type: Any) -> InvalidInputError:
    """msgspec's ValidationError message as a 400 naming the field: the first key of the JSON path
    (`$.liked[0]` -> `liked`), else the missing or unknown field it names, else `body`."""
    at = _PATH.search(message)
    path = at.group("path") if at else ""
    message = message[: at.start()] if at else message
    key = _FIRST_KEY.match(path)
    if key:
        where = path.lstrip(".")
        allowed = literal_values(_field_types(data_type).get(key.group("key")))
        suffix = f"; allowed: {', '.join(map(str, allowed))}" if allowed else ""
        return InvalidInputError(f"invalid {where}: {short_echo(message)}{suffix}", field=key.group("key"))
    if missing := _MISSING.match(message):
        name = missing.group("name")
        return InvalidInputError(f"{name} is required (a body field); the body is {describe(data_type)}", field=name)
    if unknown := _UNKNOWN.match(message):
        name = unknown.group("name")[:40]
        return InvalidInputError(f"unknown body field {name!r}; the body is {describe(data_type)}", field=name)
    return InvalidInputError(f"invalid body: {short_echo(message)}; the body is {describe(data_type)}", field=BODY)


def describe(data_type: Any) -> str:
    """The body's shape in words: "a JSON object with movie_id, rating" for a Struct."""
    fields = _field_types(data_type)
    return f"a JSON object with {', '.join(fields)}" if fields else "JSON"


def _field_types(data_type: Any) -> dict[str, Any]:
    """A Struct's JSON field names -> their types; {} for anything else."""
    if isinstance(data_type, type) and issubclass(data_type, msgspec.Struct):
        return {f.encode_name: f.type for f in msgspec.structs.fields(data_type)}
    return {}
