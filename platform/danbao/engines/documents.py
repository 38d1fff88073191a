"""Which document a file is (资料类型), and which documents a project still lacks.

A file on a record only carries a media kind (image, document …); staff say
what it *is* — the business licence, the credit report — by tagging it with
a code of the ``document_kind`` code list (one row of ``danbao_document_tag``
per attachment; an empty code removes the tag).

A project's product names the documents it needs (``ProductMeta.documents``:
code, required, stage). A document is present when a live file tagged with
its code is on the project record (any attachments field) or on the
project's customer (the first reference of the setting
``project_customer_fields`` that is set) — a business licence is usually
filed once, on the customer. A file in an attachments field named like the
code, and a child row of the project whose ``document_kind`` code field holds
the code (with a file, when the row has attachments fields), count too.

The project keeps the Chinese labels of its missing required
application-stage documents in the read-only field ``documents_missing``
(None when complete): a save hook recomputes it on every save, and
``refresh_documents_missing`` rewrites it (through ``RecordService.assign``,
so audited and versioned) after files are uploaded, tagged, untagged or
removed on a project or a customer. No Flask here.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from danbao.engines.projects import customer_fields, customer_of, project_em
from danbao.engines.records import RecordService, register_save_hook
from danbao.meta.model import DocumentRequirement, EntityMeta, Label, Meta
from danbao.model.system import ATTACHMENT_TABLE, DOCUMENT_TAG_TABLE

DOCUMENT_CODELIST = "document_kind"
#: the project field holding the missing application-stage documents
MISSING_FIELD = "documents_missing"
#: stages in the order a project goes through them
STAGES = ("application", "contract", "release")
MAX_CODE = 64


class DocumentRefused(Exception):
    """A tag that cannot be set; nothing changed. ``kind`` is invalid | not_found."""

    def __init__(self, message: Label, kind: str = "invalid"):
        super().__init__(message.en)
        self.message = message
        self.kind = kind


@dataclass(frozen=True)
class DocumentFile:
    """A live attachment that counts as a document."""
    id: int
    entity: str
    record_id: int
    field: str
    filename: str


@dataclass(frozen=True)
class DocumentState:
    """One document a product asks for, and the files that provide it."""
    requirement: DocumentRequirement
    label: Label
    files: tuple[DocumentFile, ...]
    present: bool

    @property
    def code(self) -> str:
        return self.requirement.code

    @property
    def required(self) -> bool:
        return self.requirement.required

    @property
    def stage(self) -> str:
        return self.requirement.stage


# -- the code list --------------------------------------------------------------------------------
def kind_options(meta: Meta) -> list[tuple[str, Label]]:
    """(code, label) of every document kind, in the code list's order."""
    codelist = meta.codelists.get(DOCUMENT_CODELIST)
    return [(item.code, item.label) for item in codelist.items] if codelist else []


def kind_label(meta: Meta, code: str) -> Label:
    for item_code, label in kind_options(meta):
        if item_code == code:
            return label
    return Label(code, code)


def _codes(meta: Meta) -> set[str]:
    return {code for code, _ in kind_options(meta)}


def taggable_entities(meta: Meta) -> set[str]:
    """The entities whose files count for a project: the project entity and its customers'."""
    project = meta.setting("project_entity")
    if not project or project not in meta.entities:
        return set()
    return {project} | {f.target for f in customer_fields(meta)}


# -- tags ----------------------------------------------------------------------------------------
def tag(session, models, meta: Meta, attachment_id: int, doc_kind: str | None, user_id: int | None,
        *, now: dt.datetime | None = None) -> str | None:
    """Say which document a live attachment is (or, with an empty ``doc_kind``, that it is none).

    Returns the code now on the file. Refuses (DocumentRefused) a code that is
    not in ``document_kind`` and an attachment that does not exist or was
    removed. Not committed: the caller's transaction holds it.
    """
    if doc_kind is not None and not isinstance(doc_kind, str):
        raise DocumentRefused(Label("资料类型应为文本", "the document kind must be a string"))
    code = (doc_kind or "").strip() or None
    if code is not None and (len(code) > MAX_CODE or code not in _codes(meta)):
        shown = code[:MAX_CODE]
        raise DocumentRefused(Label(f"没有这种资料类型：{shown}（应为“资料类型”代码表中的代码）",
                                    f"no such document kind: {shown} (must be a code of the document_kind list)"))
    att = models.system[ATTACHMENT_TABLE]
    tags = models.system[DOCUMENT_TAG_TABLE]
    valid = isinstance(attachment_id, int) and not isinstance(attachment_id, bool) and 0 < attachment_id < 2**31
    found = valid and session.execute(sa.select(att.c.id).where(
        att.c.id == attachment_id, att.c.deleted.is_(False))).first() is not None
    if not found:
        raise DocumentRefused(Label(f"附件不存在：#{attachment_id}", f"no such attachment: #{attachment_id}"),
                              "not_found")
    if code is None:
        session.execute(tags.delete().where(tags.c.attachment_id == attachment_id))
        return None
    values = {"doc_kind": code, "tagged_by_id": user_id, "tagged_at": now or dt.datetime.now()}
    updated = session.execute(tags.update().where(tags.c.attachment_id == attachment_id).values(**values))
    if not updated.rowcount:
        session.execute(tags.insert().values(attachment_id=attachment_id, **values))
    return code


def tags_for(session, models, entity: str, record_id: int) -> dict[int, str]:
    """attachment id -> document kind code, for the live tagged files of one record."""
    att = models.system[ATTACHMENT_TABLE]
    tags = models.system[DOCUMENT_TAG_TABLE]
    rows = session.execute(sa.select(tags.c.attachment_id, tags.c.doc_kind)
                           .join(att, att.c.id == tags.c.attachment_id)
                           .where(att.c.entity == entity, att.c.record_id == record_id, att.c.deleted.is_(False)))
    return {r.attachment_id: r.doc_kind for r in rows}


def tag_of(session, models, attachment_id: int) -> str | None:
    tags = models.system[DOCUMENT_TAG_TABLE]
    return session.execute(sa.select(tags.c.doc_kind).where(tags.c.attachment_id == attachment_id)).scalar()


# -- a project's documents -------------------------------------------------------------------------
def _record_files(session, models, meta: Meta, records: list[tuple[str, int]]) -> dict[str, list[DocumentFile]]:
    """code -> live files of these records that are that document (by tag, or by a field named like the code)."""
    if not records:
        return {}
    att = models.system[ATTACHMENT_TABLE]
    tags = models.system[DOCUMENT_TAG_TABLE]
    codes = _codes(meta)
    which = sa.or_(*[sa.and_(att.c.entity == entity, att.c.record_id == rid) for entity, rid in records])
    rows = session.execute(sa.select(att.c.id, att.c.entity, att.c.record_id, att.c.field, att.c.filename,
                                     tags.c.doc_kind)
                           .select_from(att.outerjoin(tags, tags.c.attachment_id == att.c.id))
                           .where(which, att.c.deleted.is_(False)).order_by(att.c.id)).all()
    out: dict[str, list[DocumentFile]] = {}
    for r in rows:
        code = r.doc_kind or (r.field if r.field in codes else None)
        if code:
            out.setdefault(code, []).append(DocumentFile(r.id, r.entity, r.record_id, r.field, r.filename))
    return out


def _child_rows_present(session, models, meta: Meta, em: EntityMeta, project, files: dict) -> set[str]:
    """Codes held by the project's child rows with a ``document_kind`` code field (adding their files)."""
    present: set[str] = set()
    for child_field in em.children:
        child = meta.entities.get(child_field.target)
        if child is None:
            continue
        kind_fields = [f for f in child.column_fields if f.type == "code" and f.codelist == DOCUMENT_CODELIST]
        if not kind_fields:
            continue
        rows = list(getattr(project, child_field.name, None) or ())
        by_row: dict[int, list] = {}
        if child.attachment_fields:
            ids = [r.id for r in rows if r.id is not None]
            if ids:
                att = models.system[ATTACHMENT_TABLE]
                for a in session.execute(sa.select(att).where(att.c.entity == child.name, att.c.record_id.in_(ids),
                                                              att.c.deleted.is_(False)).order_by(att.c.id)):
                    by_row.setdefault(a.record_id, []).append(
                        DocumentFile(a.id, a.entity, a.record_id, a.field, a.filename))
        for row in rows:
            row_files = by_row.get(row.id, [])
            if child.attachment_fields and not row_files:
                continue
            for kf in kind_fields:
                code = getattr(row, kf.column_name, None)
                if code:
                    present.add(code)
                    files.setdefault(code, []).extend(row_files)
    return present


def document_status(session, models, meta: Meta, project) -> list[DocumentState]:
    """The documents of the project's product, each with the files that provide it.

    ``project`` is a project record (an unsaved one has only its customer's files).
    An unknown product, or a build without a project entity, asks for nothing.
    """
    em = project_em(meta)
    product = meta.products.get(getattr(project, "product", None) or "") if em is not None else None
    if product is None or not product.documents:
        return []
    with session.no_autoflush:
        records = []
        if getattr(project, "id", None) is not None:
            records.append((em.name, project.id))
        customer = customer_of(meta, project)
        if customer is not None:
            records.append(customer)
        files = _record_files(session, models, meta, records)
        by_rows = _child_rows_present(session, models, meta, em, project, files)
    asked = [d for d in product.documents if d.applies_to(customer[0] if customer is not None else None)]
    return [DocumentState(requirement=d, label=kind_label(meta, d.code), files=tuple(files.get(d.code, ())),
                          present=bool(files.get(d.code)) or d.code in by_rows)
            for d in asked]


def _stage_rank(stage: str) -> int:
    return STAGES.index(stage) if stage in STAGES else len(STAGES)


def missing_documents(session, models, meta: Meta, project, stage: str = "application", *,
                      states: list[DocumentState] | None = None) -> list[DocumentState]:
    """The required documents of stages up to ``stage`` (application < contract < release) not present."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: one of {', '.join(STAGES)}")
    if states is None:
        states = document_status(session, models, meta, project)
    limit = _stage_rank(stage)
    return [s for s in states if s.required and not s.present and _stage_rank(s.stage) <= limit]


def missing_text(missing: list[DocumentState], max_length: int = 500) -> str | None:
    """The Chinese labels joined with 、 (cut to the field's length), or None when nothing is missing."""
    if not missing:
        return None
    text = "、".join(s.label.zh for s in missing)
    return text if len(text) <= max_length else text[:max_length - 1] + "…"


def _missing_value(session, models, meta: Meta, em: EntityMeta, project) -> str | None:
    f = em.field(MISSING_FIELD)
    return missing_text(missing_documents(session, models, meta, project, "application"),
                        f.max_length or 500)


# -- keeping documents_missing right ------------------------------------------------------------------
@register_save_hook
def keep_documents_missing(service: RecordService, em: EntityMeta, project, by_user: bool) -> None:
    meta = service.meta
    if em.name != meta.setting("project_entity") or not em.has_field(MISSING_FIELD):
        return
    value = _missing_value(service.session, service.models, meta, em, project)
    if getattr(project, em.field(MISSING_FIELD).column_name) != value:
        service.set_system_values(em, project, {MISSING_FIELD: value})


def projects_of(session, models, meta: Meta, entity: str, record_id: int) -> list[int]:
    """Ids of the projects whose documents a file on (entity, record_id) can change."""
    em = project_em(meta)
    if em is None or not em.has_field(MISSING_FIELD):
        return []
    if entity == em.name:
        return [record_id]
    table = models.table(em.name)
    columns = [table.c[f.column_name] for f in customer_fields(meta) if f.target == entity]
    if not columns:
        return []
    return list(session.execute(sa.select(table.c.id).where(sa.or_(*[c == record_id for c in columns]))
                                .order_by(table.c.id)).scalars())


def refresh_documents_missing(service: RecordService, entity: str, record_id: int) -> list[int]:
    """After files of (entity, record_id) changed: rewrite ``documents_missing`` of each project
    it concerns whose value is now different (audited and versioned by ``RecordService.assign``;
    not committed). Returns the ids of the projects changed."""
    meta = service.meta
    em = project_em(meta)
    changed = []
    for pid in projects_of(service.session, service.models, meta, entity, record_id):
        project = service.session.get(service.models.cls(em.name), pid)
        if project is None:
            continue
        value = _missing_value(service.session, service.models, meta, em, project)
        if getattr(project, em.field(MISSING_FIELD).column_name) != value:
            service.assign(em.name, pid, {MISSING_FIELD: value})
            changed.append(pid)
    return changed


def refresh_all_projects(service: RecordService, statuses: tuple[str, ...] | None = None) -> int:
    """Rewrite ``documents_missing`` on the projects (in ``statuses``, if given) where it
    is out of date (a database upgraded to a build with the field, a product whose
    documents changed); not committed. Returns how many projects changed."""
    em = project_em(service.meta)
    if em is None or not em.has_field(MISSING_FIELD):
        return 0
    table = service.models.table(em.name)
    query = sa.select(table.c.id).order_by(table.c.id)
    if statuses is not None and em.has_field("status"):
        query = query.where(table.c[em.field("status").column_name].in_(statuses))
    ids = service.session.execute(query).scalars().all()
    return sum(len(refresh_documents_missing(service, em.name, pid)) for pid in ids)
