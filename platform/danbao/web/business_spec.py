"""OpenAPI for the regulatory dashboard (``web/regulatory_views.py``), the
ledger (``web/ledger_api.py``) and the document-kind (``web/documents_api.py``)
endpoints; pure, no Flask."""
from __future__ import annotations

from danbao.meta.model import LEDGER_BALANCES, Meta

_ERROR = {"$ref": "#/components/schemas/Error"}
_VALIDATION = {"$ref": "#/components/schemas/ValidationError"}
_TEXTS = {"400": "bad request", "401": "not authenticated", "403": "forbidden (not yours to do, or not allowed)",
          "404": "not found", "409": "not in a state that allows it, or someone else acted first",
          "413": "body too large", "422": "invalid data"}
MAX_ID = 2**31 - 1
MONEY = {"type": "string", "pattern": r"^-?\d+\.\d{2}$"}
DECIMAL = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}
STATUSES = ["ok", "near", "breach"]
STATES = ["made", "checked", "confirmed", "rejected"]


def _responses(ok_code: str, ok: dict, *codes: str) -> dict:
    out = {ok_code: {"description": "OK", "content": {"application/json": {"schema": ok}}}}
    for code in codes:
        out[code] = {"description": _TEXTS[code],
                     "content": {"application/json": {"schema": _VALIDATION if code == "422" else _ERROR}}}
    return out


def _nullable(schema: dict) -> dict:
    return dict(schema, nullable=True)


def _id_param(name: str) -> list[dict]:
    return [{"name": name, "in": "path", "required": True,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}]


def _body(schema: dict, required: bool = True) -> dict:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _obj(props: dict, required=None) -> dict:
    return {"type": "object", "required": list(required if required is not None else props), "properties": props}


def dashboard_schema() -> dict:
    text, integer = {"type": "string"}, {"type": "integer"}
    status = {"type": "string", "enum": STATUSES}
    breakdown = {"type": "array", "items": _obj({"code": _nullable(text), "label": text, "count": integer,
                                                 "amount": MONEY})}
    return _obj({
        "as_of": {"type": "string", "format": "date"},
        "limits": _obj({"net_assets": MONEY, "leverage_limit": DECIMAL, "single_customer_limit": DECIMAL,
                        "related_group_limit": DECIMAL, "near_breach_share": DECIMAL}),
        "outstanding": MONEY, "in_force_count": integer,
        "leverage": _nullable(DECIMAL), "leverage_status": status, "leverage_status_label": text,
        "top_customers": {"type": "array", "items": _obj({
            "entity": text, "record_id": integer, "name": text, "amount": MONEY, "share": _nullable(DECIMAL),
            "status": status, "status_label": text, "link": text})},
        "top_groups": {"type": "array", "items": _obj({
            "members": {"type": "array", "items": integer}, "names": {"type": "array", "items": text},
            "amount": MONEY, "share": _nullable(DECIMAL), "status": status, "status_label": text})},
        "customers_near": integer, "customers_breach": integer, "groups_near": integer, "groups_breach": integer,
        "year": integer, "compensation_in_year": MONEY, "ended_in_year": MONEY,
        "compensation_rate": _nullable(DECIMAL), "compensation_total": MONEY, "recovered_total": MONEY,
        "loss_rate": _nullable(DECIMAL),
        "by_status": breakdown, "by_product": breakdown, "by_risk_class": breakdown,
    })


def add_regulatory_paths(paths: dict, schemas: dict, meta: Meta) -> None:
    """``GET /api/v1/regulatory/dashboard`` (when the build names its project entity)."""
    name = meta.setting("project_entity")
    if not name or name not in meta.entities:
        return
    schemas["RegulatoryDashboard"] = dashboard_schema()
    paths["/api/v1/regulatory/dashboard"] = {"get": {
        "tags": ["Regulatory ratios"],
        "summary": "监管指标: leverage, single-customer and related-group concentration, compensation rates",
        "description": "Figures from live data against the limits in the settings (net_assets, leverage_limit, "
                       "single_customer_limit, related_group_limit, near_breach_share). Money and ratios are "
                       "strings. Readable by managers, risk officers, finance, auditors and admins.",
        "responses": _responses("200", {"$ref": "#/components/schemas/RegulatoryDashboard"}, "401", "403", "404")}}


def entry_schema(meta: Meta) -> dict:
    text, integer = {"type": "string"}, {"type": "integer"}
    maybe_text, maybe_int = _nullable(text), _nullable(integer)
    props = {
        "id": integer, "project_entity": text, "project_id": integer, "project_title": maybe_text, "link": text,
        "customer_entity": maybe_text, "customer_id": maybe_int,
        "kind": text, "kind_label": text, "amount": MONEY, "direction": {"type": "integer", "enum": [1, -1]},
        "reversal": {"type": "boolean"}, "reverses_id": maybe_int, "reversed_by_id": maybe_int,
        "state": {"type": "string", "enum": STATES}, "state_label": text,
        "booked_on": {"type": "string", "format": "date"}, "note": text, "lock_version": integer,
        "made_by_id": integer, "made_by": text, "made_at": text,
        "reject_reason": maybe_text,
    }
    for who in ("checked", "confirmed", "rejected"):
        props.update({f"{who}_by_id": maybe_int, f"{who}_by": maybe_text, f"{who}_at": maybe_text})
    required = list(props)
    props["actions"] = {"type": "array", "description": "what the caller may do on it (screens' buttons)",
                        "items": {"type": "string", "enum": ["check", "confirm", "reject", "reverse"]}}
    props["step"] = {"type": "string", "enum": ["check", "confirm"], "description": "pending list: what it waits for"}
    return {"type": "object", "title": "LedgerEntry", "required": required, "properties": props}


def add_ledger_paths(paths: dict, schemas: dict, meta: Meta) -> None:
    """The ledger endpoints (when the build has a project entity and ledger kinds)."""
    name = meta.setting("project_entity")
    if not meta.ledger_kinds or not name or name not in meta.entities:
        return
    tag = ["Ledger"]
    schemas["LedgerEntry"] = entry_schema(meta)
    entry = {"$ref": "#/components/schemas/LedgerEntry"}
    balance = _obj({"code": {"type": "string", "enum": list(LEDGER_BALANCES)}, "label": {"type": "string"},
                    "amount": MONEY})
    schemas["ProjectLedger"] = _obj({
        "project_entity": {"type": "string"}, "project_id": {"type": "integer"},
        "balances": {"type": "array", "items": balance}, "entries": {"type": "array", "items": entry},
        "can_make": {"type": "boolean"}})
    one = _obj({"id": {"type": "integer"}, "result": entry})
    make = {"type": "object", "required": ["kind", "amount"], "additionalProperties": False, "properties": {
        "kind": {"type": "string", "enum": sorted(meta.ledger_kinds)},
        "amount": {"type": "string", "pattern": r"^-?\d{1,16}(\.\d{1,2})?$",
                   "description": "CNY, at most two decimal places (a JSON number is accepted too)"},
        "booked_on": {"type": "string", "format": "date", "description": "default today"},
        "note": {"type": "string", "maxLength": 4000}}}
    label = meta.entities[name].label.en
    act_codes = ("400", "401", "403", "404", "409", "413", "422")
    paths[f"/api/v1/{name}/{{record_id}}/ledger"] = {
        "get": {"tags": tag, "summary": f"Ledger of a {label}: every balance and the entries, newest first",
                "parameters": _id_param("record_id"),
                "responses": _responses("200", {"$ref": "#/components/schemas/ProjectLedger"}, "401", "403", "404")},
        "post": {"tags": tag, "summary": f"Make a ledger entry on a {label} (it then waits to be checked)",
                 "description": "Who may make, check and confirm is set by ledger_maker / ledger_checker / "
                                "ledger_confirmer; three different people. Refusals: 403 not yours to do, 422 "
                                "invalid (amount, status, above a balance), 409 state or a concurrent change.",
                 "parameters": _id_param("record_id"), "requestBody": _body(make),
                 "responses": _responses("201", one, *act_codes)}}
    lock = {"type": "object", "additionalProperties": False, "properties": {
        "lock_version": {"type": "integer", "minimum": 0, "maximum": MAX_ID,
                         "description": "the entry's lock_version you read (refused with 409 if it changed)"}}}
    reason = {"type": "object", "required": ["reason"], "additionalProperties": False, "properties": {
        "reason": {"type": "string", "minLength": 1, "maxLength": 4000, "pattern": r"\S"}}}
    for action, summary, body, ok in (
            ("check", "Check a made entry (the second person)", _body(lock, required=False), "200"),
            ("confirm", "Confirm a checked entry (the third person): it counts from now on",
             _body(lock, required=False), "200"),
            ("reject", "Send a made or checked entry back, with a reason", _body(reason), "200"),
            ("reverse", "Make the reversal of a confirmed entry (it goes through the same three hands)",
             _body(reason), "201")):
        paths[f"/api/v1/ledger/{{entry_id}}/{action}"] = {"post": {
            "tags": tag, "summary": summary, "parameters": _id_param("entry_id"), "requestBody": body,
            "responses": _responses(ok, one, *act_codes)}}
    paths["/api/v1/ledger/pending"] = {"get": {
        "tags": tag, "summary": "Ledger entries waiting for my check or confirmation, oldest first",
        "responses": _responses("200", _obj({"count": {"type": "integer"},
                                             "result": {"type": "array", "items": entry}}), "401", "404")}}


def attachment_schema(meta: Meta) -> dict:
    from danbao.engines.documents import kind_options
    text, integer = {"type": "string"}, {"type": "integer"}
    return {"type": "object", "title": "Attachment", "properties": {
        "id": integer, "entity": text, "record_id": integer, "field": text, "filename": text,
        "content_type": text, "kind": {"type": "string", "enum": ["image", "document", "audio", "video"]},
        "size": integer, "uploaded_at": text,
        "doc_kind": {"type": "string", "nullable": True, "enum": [code for code, _ in kind_options(meta)] + [None],
                     "description": "which document the file is (a document_kind code), or null"},
        "doc_kind_label": _nullable(text)},
        "required": ["id", "entity", "record_id", "field", "filename", "content_type", "kind", "size", "uploaded_at",
                     "doc_kind", "doc_kind_label"]}


def add_document_paths(paths: dict, schemas: dict, meta: Meta) -> None:
    """Document kinds on files (web/documents_api.py): tag a file, list a record's files, a project's documents."""
    from danbao.engines.documents import STAGES, kind_options, taggable_entities
    entities = taggable_entities(meta)
    codes = [code for code, _ in kind_options(meta)]
    if not entities or not codes:
        return
    tag = ["Documents"]
    schemas["Attachment"] = attachment_schema(meta)
    attachment = {"$ref": "#/components/schemas/Attachment"}
    body = {"type": "object", "required": ["doc_kind"], "additionalProperties": False, "properties": {
        "doc_kind": {"type": "string", "nullable": True, "enum": codes + [None],
                     "description": "a document_kind code; null (or \"\") removes the tag"}}}
    paths["/api/v1/attachments/{attachment_id}/tag"] = {"post": {
        "tags": tag, "summary": "Say which document a file of a project or customer is (营业执照, 征信报告 …)",
        "description": "Needs write permission on the file's record. The projects the file counts for get their "
                       "documents_missing rewritten.",
        "parameters": _id_param("attachment_id"), "requestBody": _body(body),
        "responses": _responses("200", attachment, "400", "401", "403", "404", "409", "413", "422")}}
    for name in sorted(entities):
        paths[f"/api/v1/{name}/{{record_id}}/attachments"] = {"get": {
            "tags": tag, "summary": f"Files of a {meta.entities[name].label.en}, each with its document kind",
            "parameters": _id_param("record_id"),
            "responses": _responses("200", _obj({"result": {"type": "array", "items": attachment}}),
                                    "401", "403", "404")}}
    project = meta.setting("project_entity")
    file_ = _obj({"id": {"type": "integer"}, "entity": {"type": "string"}, "record_id": {"type": "integer"},
                  "field": {"type": "string"}, "filename": {"type": "string"}})
    state = _obj({"code": {"type": "string"}, "label": {"type": "string"}, "required": {"type": "boolean"},
                  "stage": {"type": "string"}, "present": {"type": "boolean"},
                  "files": {"type": "array", "items": file_}})
    schemas["ProjectDocuments"] = _obj({
        "product": _nullable({"type": "string"}), "documents": {"type": "array", "items": state},
        "missing": _obj({stage: {"type": "array", "items": {"type": "string"},
                                 "description": f"required documents of the stages up to {stage} not present"}
                         for stage in STAGES})})
    paths[f"/api/v1/{project}/{{record_id}}/documents"] = {"get": {
        "tags": tag, "summary": "The documents the project's product asks for: present (with the files, the "
                                "customer's included) or missing",
        "parameters": _id_param("record_id"),
        "responses": _responses("200", {"$ref": "#/components/schemas/ProjectDocuments"}, "401", "403", "404")}}
