"""OpenAPI 3.0 description of the generated REST API, built from Meta.

A pure function of Meta, so the spec always matches what the dispatcher
accepts: the same fields, types, limits and error responses.
"""
from __future__ import annotations

from danbao.web.business_spec import add_document_paths, add_ledger_paths, add_regulatory_paths
from danbao.web.inbox_spec import add_warning_paths
from danbao.web.workflow_spec import add_workflow_paths
from danbao.meta.model import EntityMeta, FieldMeta, Meta, MONEY_PRECISION, MONEY_SCALE, RATE_PRECISION, RATE_SCALE

ERROR = {"$ref": "#/components/schemas/Error"}
VALIDATION = {"$ref": "#/components/schemas/ValidationError"}


def _decimal_pattern(f: FieldMeta) -> str:
    if f.type == "money":
        precision, scale = MONEY_PRECISION, MONEY_SCALE
    elif f.type == "rate":
        precision, scale = RATE_PRECISION, RATE_SCALE
    else:
        precision, scale = f.precision or 18, f.scale if f.scale is not None else 4
    whole = precision - scale
    return rf"^-?\d{{1,{whole}}}(\.\d{{1,{scale}}})?$" if scale else rf"^-?\d{{1,{whole}}}$"


def field_schema(meta: Meta, f: FieldMeta, *, output: bool) -> dict:
    t = f.type
    if t in ("string", "text"):
        s = {"type": "string", "maxLength": f.max_length or (255 if t == "string" else 100000)}
        if f.min_length:
            s["minLength"] = f.min_length
    elif t == "integer":
        s = {"type": "integer", "format": "int64"}
    elif t in ("decimal", "money", "rate"):
        s = {"type": "string", "pattern": _decimal_pattern(f), "format": "decimal"}
    elif t == "boolean":
        s = {"type": "boolean"}
    elif t == "date":
        s = {"type": "string", "format": "date"}
    elif t == "datetime":
        s = {"type": "string", "format": "date-time"} if not output else {"type": "string"}
    elif t == "enum":
        s = {"type": "string", "enum": [o.value for o in f.options]}
    elif t == "code":
        s = {"type": "string", "enum": [i.code for i in meta.codelists[f.codelist].items]}
    elif t == "reference":
        s = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1, "description": f"id of a {f.target} record"}
    elif t == "user":
        s = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1, "description": "id of a user"}
    elif t == "children":
        child = meta.entity(f.target)
        s = {"type": "array", "items": entity_schema(meta, child, output=output, child=True), "maxItems": 500}
        return s
    else:
        raise ValueError(t)
    if t == "string":
        _check_keys(f, s, output=output)
    if f.type in ("integer", "decimal", "money", "rate") and not output:
        if f.min is not None:
            s["x-minimum"] = str(f.min)
        if f.max is not None:
            s["x-maximum"] = str(f.max)
    s["nullable"] = True
    s["title"] = f.label.en
    s["description"] = f"{f.label.zh} / {f.label.en}" + (f" — {f.help.en}" if f.help else "")
    return s


def check_pattern(f: FieldMeta) -> str | None:
    """The shape every stored value of a checked field has: its check's pattern, or
    for ``check_by`` any of the patterns its checks have."""
    from danbao.checks import NAMED_CHECKS
    names = [f.check] if f.check else sorted({c for _, c in f.check_by.checks}) if f.check_by else []
    if not names:
        return None
    if len(names) == 1:
        return NAMED_CHECKS[names[0]].pattern
    return "^(?:" + "|".join(f"(?:{NAMED_CHECKS[n].pattern[1:-1]})" for n in names) + ")$"


def _check_keys(f: FieldMeta, s: dict, *, output: bool) -> None:
    """Stored values match the check's pattern; input does too unless the field
    normalises it (then the pattern holds after ``x-normalize``)."""
    pattern = check_pattern(f)
    if pattern and (output or not f.normalize):
        s["pattern"] = pattern
    elif pattern:
        s["x-normalized-pattern"] = pattern
    if f.normalize and not output:
        s["x-normalize"] = list(f.normalize)
    if f.check:
        s["x-check"] = f.check
    if f.check_by:
        s["x-check-by"] = {"field": f.check_by.field, "checks": dict(f.check_by.checks)}


def entity_schema(meta: Meta, em: EntityMeta, *, output: bool, child: bool = False) -> dict:
    props = {}
    required = []
    for f in em.fields:
        if f.type == "attachments":
            continue
        if not output and f.readonly:
            continue
        props[f.name] = field_schema(meta, f, output=output)
        if f.required and not output and f.type != "children":
            required.append(f.name)
    if output:
        props["id"] = {"type": "integer"}
        props["version"] = {"type": "integer"}
        props["created_at"] = {"type": "string", "nullable": True}
        props["updated_at"] = {"type": "string", "nullable": True}
    elif child:
        props["id"] = {"type": "integer", "nullable": True, "description": "id of an existing row to keep"}
    schema = {"type": "object", "properties": props, "additionalProperties": False, "title": em.label.en}
    if required:
        schema["required"] = required
    return schema


def _responses(ok_code: str, ok_schema: dict | None, *codes: str) -> dict:
    texts = {"400": "bad request", "401": "not authenticated", "403": "forbidden", "404": "not found",
             "409": "conflict: changed by someone else", "413": "body too large", "422": "invalid data"}
    out = {ok_code: {"description": "OK", "content": {"application/json": {"schema": ok_schema or ERROR}}}}
    for code in codes:
        out[code] = {"description": texts[code],
                     "content": {"application/json": {"schema": VALIDATION if code == "422" else ERROR}}}
    return out


def _score_paths(paths, schemas, name, cards, tag, id_param) -> None:
    """Scoring a record and reading its score history."""
    inputs = {}
    for card in cards:
        for ind in card.indicators:
            if ind.input:
                inputs.setdefault(ind.code, {"type": "string", "enum": []})
                inputs[ind.code]["enum"] += [o.value for o in ind.options if o.value not in inputs[ind.code]["enum"]]
    schemas[f"{name}_score_request"] = {
        "type": "object", "additionalProperties": False, "properties": {
            "scorecard": {"type": "string", "enum": [c.code for c in cards],
                          "description": "the scorecard to use (default: the first)"},
            "inputs": {"type": "object", "properties": inputs,
                       "description": "the analyst's choice for every input indicator"},
            "as_of": {"type": "string", "format": "date", "description": "scoring date, not in the future (default today)"}}}
    paths[f"/api/v1/{name}/{{record_id}}/scores"] = {
        "get": {"tags": tag, "summary": f"Score history of a {name}", "parameters": id_param,
                "responses": _responses("200", {"type": "object", "properties": {"result": {
                    "type": "array", "items": {"$ref": "#/components/schemas/ScoreSummary"}}}},
                    "401", "403", "404")},
        "post": {"tags": tag, "summary": f"Score a {name} with a scorecard (stored as history)",
                 "parameters": id_param,
                 "requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"$ref": f"#/components/schemas/{name}_score_request"}}}},
                 "responses": _responses("201", {"$ref": "#/components/schemas/Score"},
                                         "400", "401", "403", "404", "413", "422")},
    }


def _score_schemas() -> dict:
    text, num = {"type": "string"}, {"type": "string", "pattern": r"^-?\d+\.\d{2}$"}
    maybe = {"type": "string", "nullable": True}
    summary = {"type": "object", "required": ["id", "scorecard", "total", "grade"], "properties": {
        "id": {"type": "integer"}, "scorecard": text, "scorecard_version": text, "label": text, "entity": text,
        "record_id": {"type": "integer"}, "as_of": text, "total": num, "grade": text, "grade_before_cap": text,
        "statement_period": maybe, "scored_at": text, "scored_by_id": {"type": "integer", "nullable": True},
        "scored_by": text, "meta_version": text}}
    item = {"type": "object", "properties": {
        "code": text, "group": text, "label": text, "input": {"type": "boolean"}, "value": maybe,
        "value_label": maybe, "band": maybe, "computable": {"type": "boolean"}, "reason": maybe,
        "missing_rule": {"type": "string", "nullable": True, "enum": ["worst", "points", "exclude", None]},
        "points": num, "weight": num, "weighted": num}}
    score = {"type": "object", "required": ["id", "total", "grade", "items"], "properties": dict(
        summary["properties"], knockouts={"type": "array", "items": {"type": "object", "properties": {
            "code": text, "label": text, "cap": text}}}, items={"type": "array", "items": item})}
    return {"ScoreSummary": summary, "Score": score}


def build_spec(meta: Meta) -> dict:
    paths: dict = {}
    schemas: dict = {
        "Error": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
        "ValidationError": {"type": "object", "required": ["message"], "properties": {
            "message": {"type": "string"},
            "errors": {"type": "object", "additionalProperties": {"type": "string"}},
            "codes": {"type": "object", "additionalProperties": {"type": "string", "pattern": r"^[A-Z]{2}\d{3}$"},
                      "description": "stable codes (ID001 ...) of the errors that have one"}}},
    }
    for em in meta.entities.values():
        if em.is_child:
            continue
        name = em.name
        out_name, in_name = f"{name}", f"{name}_input"
        schemas[out_name] = entity_schema(meta, em, output=True)
        inp = entity_schema(meta, em, output=False)
        schemas[in_name] = inp
        update = dict(inp)
        update.pop("required", None)
        update["properties"] = dict(inp["properties"], version={"type": "integer", "description": "the version you read"})
        update["required"] = ["version"]
        schemas[f"{name}_update"] = update
        one = {"type": "object", "properties": {"id": {"type": "integer"}, "result": {"$ref": f"#/components/schemas/{out_name}"}}}
        many = {"type": "object", "properties": {
            "count": {"type": "integer"}, "page": {"type": "integer"}, "page_size": {"type": "integer"},
            "result": {"type": "array", "items": {"$ref": f"#/components/schemas/{out_name}"}}}}
        tag = [em.label.en]
        params = [{"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                  {"name": "page_size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                  {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 100}}]
        id_param = [{"name": "record_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}}]
        paths[f"/api/v1/{name}/"] = {
            "get": {"tags": tag, "summary": f"List {em.label.en}", "parameters": params,
                    "responses": _responses("200", many, "400", "401", "403")},
            "post": {"tags": tag, "summary": f"Create {em.label.en}",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": f"#/components/schemas/{in_name}"}}}},
                     "responses": _responses("201", one, "400", "401", "403", "409", "413", "422")},
        }
        paths[f"/api/v1/{name}/{{record_id}}"] = {
            "get": {"tags": tag, "summary": f"Get {em.label.en}", "parameters": id_param,
                    "responses": _responses("200", one, "401", "403", "404")},
            "put": {"tags": tag, "summary": f"Update {em.label.en}", "parameters": id_param,
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": f"#/components/schemas/{name}_update"}}}},
                    "responses": _responses("200", one, "400", "401", "403", "404", "409", "413", "422")},
            "delete": {"tags": tag, "summary": f"Delete {em.label.en}",
                       "parameters": id_param + [{"name": "version", "in": "query", "schema": {"type": "integer"}}],
                       "responses": _responses("200", None, "401", "403", "404", "409", "422")},
        }
        cards = [c for c in meta.scorecards.values() if c.entity == name and c.active]
        if cards:
            _score_paths(paths, schemas, name, cards, tag, id_param)
    if meta.scorecards:
        schemas.update(_score_schemas())
        paths["/api/v1/scores/{score_id}"] = {"get": {
            "tags": ["Credit scores"], "summary": "One credit score with every indicator's explanation",
            "parameters": [{"name": "score_id", "in": "path", "required": True,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}}],
            "responses": _responses("200", {"$ref": "#/components/schemas/Score"}, "401", "404")}}
    add_warning_paths(paths, schemas)
    add_workflow_paths(paths, schemas, meta)
    add_regulatory_paths(paths, schemas, meta)
    add_ledger_paths(paths, schemas, meta)
    add_document_paths(paths, schemas, meta)
    return {
        "openapi": "3.0.3",
        "info": {"title": "Danbao API", "version": meta.version,
                 "description": "Generated from metadata. Log in with POST /api/v1/security/login "
                                "({\"username\", \"password\", \"provider\": \"db\"}) and send the access token "
                                "as a bearer token."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"jwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "security": [{"jwt": []}],
    }
