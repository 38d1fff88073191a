"""OpenAPI for the warnings inbox endpoints (``web/inbox_api.py``); pure, no Flask."""
from __future__ import annotations

from danbao.engines.inbox import LEVELS, MAX_COMMENT, MAX_PAGE, MAX_PAGE_SIZE, STATUSES

_ERROR = {"$ref": "#/components/schemas/Error"}
_VALIDATION = {"$ref": "#/components/schemas/ValidationError"}
_TEXTS = {"400": "bad request", "401": "not authenticated", "404": "no such warning in your inbox",
          "413": "body too large", "422": "invalid data"}


def _responses(ok: dict, *codes: str) -> dict:
    out = {"200": {"description": "OK", "content": {"application/json": {"schema": ok}}}}
    for code in codes:
        out[code] = {"description": _TEXTS[code],
                     "content": {"application/json": {"schema": _VALIDATION if code in ("400", "422") else _ERROR}}}
    return out


def warning_schema() -> dict:
    text = {"type": "string"}
    maybe = {"type": "string", "nullable": True}
    return {"type": "object", "title": "Warning", "required": [
        "id", "rule", "rule_label", "level", "message", "status", "entity", "record_id", "opened_at", "opened_as_of"],
        "properties": {
            "id": {"type": "integer"}, "rule": text, "rule_label": text,
            "level": {"type": "string", "enum": list(LEVELS)}, "message": text,
            "status": {"type": "string", "enum": ["open", "closed"]},
            "entity": text, "record_id": {"type": "integer"},
            "link": dict(maybe, description="the page showing the record (a child row's parent)"),
            "record_title": maybe, "opened_at": text,
            "opened_as_of": dict(text, description="the day the condition was found true"),
            "closed_at": maybe, "acknowledged_at": maybe, "acknowledged_by": maybe, "ack_comment": maybe}}


def add_warning_paths(paths: dict, schemas: dict) -> None:
    """``GET /api/v1/warnings/`` and ``POST /api/v1/warnings/{warning_id}/acknowledge``."""
    schemas["Warning"] = warning_schema()
    tag = ["Warnings"]
    item = {"$ref": "#/components/schemas/Warning"}
    params = [
        {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(STATUSES), "default": "open"}},
        {"name": "level", "in": "query", "schema": {"type": "string", "enum": list(LEVELS)}},
        {"name": "rule", "in": "query", "schema": {"type": "string", "maxLength": 64}},
        {"name": "acknowledged", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]}},
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
        {"name": "page_size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}},
    ]
    many = {"type": "object", "required": ["count", "page", "page_size", "result"], "properties": {
        "count": {"type": "integer"}, "page": {"type": "integer"}, "page_size": {"type": "integer"},
        "result": {"type": "array", "items": item}}}
    paths["/api/v1/warnings/"] = {"get": {
        "tags": tag, "summary": "My warnings (open, newest first, unless filtered)",
        "description": "The warnings the caller is notified of: by role, or as the user a rule's notify "
                       "field names on the record. Admins see all.",
        "parameters": params, "responses": _responses(many, "400", "401")}}
    body = {"type": "object", "required": ["comment"], "additionalProperties": False, "properties": {
        "comment": {"type": "string", "minLength": 1, "maxLength": MAX_COMMENT, "pattern": r"\S"}}}
    paths["/api/v1/warnings/{warning_id}/acknowledge"] = {"post": {
        "tags": tag, "summary": "Acknowledge a warning with a comment",
        "parameters": [{"name": "warning_id", "in": "path", "required": True,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": _responses({"type": "object", "required": ["result"], "properties": {"result": item}},
                                "400", "401", "404", "413", "422")}}
