"""Files chosen on a generated form: the record's own attachments fields and
those of its child rows (a post-guarantee check's photos on the project form).

Child-row files are checked before anything is saved, so a bad one is a field
error on its row and loses nothing; after the save each is stored against the
child record its row became. The entity view calls these with the runtime and
the acting user; they read the request's form and files.
"""
from __future__ import annotations

import datetime as dt

from flask import flash, request

from danbao.engines import documents
from danbao.engines.coerce import FieldError
from danbao.engines.records import RecordService
from danbao.web.forms import posted_rows, row_state, row_uploads
from danbao.web.i18n import current_lang, t


def discard(rt, staged: dict) -> None:
    """Delete the temporary files of checked uploads that were not stored."""
    store = rt.store
    for waiting in staged.values():
        for _, one in waiting:
            store.discard(one)


def chose_files() -> bool:
    """Did the post carry any file? (A form shown again cannot keep them: say so.)"""
    return any(u and u.filename for key in request.files for u in request.files.getlist(key))


def child_files(rt, em, obj) -> dict[str, dict[int, list]]:
    """{children field: {child id: stored files}} of a record's child rows, one query per
    child entity that has attachments fields."""
    out = {}
    if obj is None:
        return out
    for f in em.children:
        child = rt.meta.entity(f.target)
        if child.attachment_fields:
            out[f.name] = rt.store.list_many(rt.session, child.name, [c.id for c in getattr(obj, f.name)])
    return out


def stage_child_files(rt, em, data, on: dt.date) -> tuple[dict, dict]:
    """Check every file chosen in a child row before anything is saved, so a bad one
    is a field error on its row and neither the record nor the other rows are lost.

    Returns ({(children field, payload position): [(attachments field, StagedFile)]},
    errors keyed as the record service keys a row's fields: ``post_checks.1.files``).
    The position is the row's place in ``data[children field]``, which is how the
    form lists rows again after an error."""
    lang = current_lang()
    staged: dict = {}
    errors: dict[str, str] = {}
    try:
        for f in em.children:
            child = rt.meta.entity(f.target)
            if not child.attachment_fields or f.name not in data:
                continue
            position = {i: k for k, (i, _) in enumerate(posted_rows(f.name, child, request.form, request.files))}
            for (i, name), chosen in sorted(row_uploads(f.name, child, request.files).items()):
                k = position[i]          # a row with a file is always kept
                row, af, key = data[f.name][k], child.field(name), f"{f.name}.{k}.{name}"
                if name in row_state(rt.meta, child, row, on).hidden:
                    continue             # like a value its conditions hide, ignored
                if af.max_files and _held(rt, f.name, i, child, row, name) + len(chosen) > af.max_files:
                    errors[key] = t("too_many_files", n=af.max_files)
                    continue
                for upload in chosen:
                    try:
                        one = rt.store.stage(field=af, filename=upload.filename, stream=upload.stream)
                    except FieldError as exc:
                        errors[key] = f"{upload.filename}: {exc.message.get(lang)}"
                        continue
                    staged.setdefault((f.name, k), []).append((af, one))
    except BaseException:
        discard(rt, staged)
        raise
    if errors:
        discard(rt, staged)
        return {}, errors
    return staged, {}


def _ticked(rt, key: str, entity: str, record_id: int) -> tuple[set[int], list]:
    """The file ids ticked for removal under ``key`` that really are the record's, and its files."""
    files = rt.store.list(rt.session, entity, record_id)
    ticked = {int(v) for v in request.form.getlist(key) if v.isdigit()}
    return ticked & {sf.id for sf in files}, files


def _held(rt, child_field: str, i: int, child, row: dict, name: str) -> int:
    """How many files field ``name`` of an existing row keeps after this post's removals."""
    row_id = int(row["id"]) if str(row.get("id") or "").isdigit() else None
    if row_id is None:
        return 0
    dropping, files = _ticked(rt, f"{child_field}-{i}-remove_attachment", child.name, row_id)
    return len([sf for sf in files if sf.field == name and sf.id not in dropping])


def store_child_files(rt, user_id, em, obj, data, staged: dict) -> int:
    """After the save: remove the files ticked in each kept row and store the checked
    uploads against the child record each posted row became (``RecordService.rows_written``).
    Returns how many files changed (a row's files may count as a project's documents)."""
    touched = 0
    for f in em.children:
        child = rt.meta.entity(f.target)
        if not child.attachment_fields or f.name not in data:
            continue
        written = RecordService.rows_written(obj, f.name) or []
        for k, (i, _) in enumerate(posted_rows(f.name, child, request.form, request.files)):
            row_id = written[k] if k < len(written) else None
            if row_id is None:      # cannot happen (every sent row is written); never guess a row
                continue
            for att_id in _ticked(rt, f"{f.name}-{i}-remove_attachment", child.name, row_id)[0]:
                rt.store.remove(rt.session, att_id)
                touched += 1
            waiting = staged.get((f.name, k), [])
            while waiting:      # one by one, so an error leaves the rest to discard()
                af, one = waiting.pop(0)
                rt.store.add_staged(rt.session, one, entity=child.name, record_id=row_id, user_id=user_id)
                touched += 1
    if touched:
        rt.session.commit()
    return touched


def store_files(rt, user_id, em, obj) -> int:
    """Store the uploads of each attachments field (tagged with the document kind chosen
    next to it, if any); return how many were stored."""
    lang = current_lang()
    taggable = em.name in documents.taggable_entities(rt.meta)
    stored = 0
    for f in em.attachment_fields:
        kind = (request.form.get(f"{f.name}__doc_kind") or "").strip() if taggable else ""
        for upload in request.files.getlist(f.name):
            if not upload or not upload.filename:
                continue
            try:
                att_id = rt.store.add(rt.session, field=f, entity=em.name, record_id=obj.id,
                                      filename=upload.filename, stream=upload.stream, user_id=user_id)
                if kind:
                    try:
                        documents.tag(rt.session, rt.models, rt.meta, att_id, kind, user_id)
                    except documents.DocumentRefused as exc:   # the file is kept, untagged
                        flash(f"{upload.filename}: {exc.message.get(lang)}", "danger")
                        kind = ""
                rt.session.commit()
                stored += 1
            except FieldError as exc:
                rt.session.rollback()
                flash(f"{f.label.get(lang)} · {upload.filename}: {exc.message.get(lang)}", "danger")
    return stored


def remove_files(rt, em, record_id) -> int:
    """Remove the record's own files ticked on the form; return how many."""
    ids, _ = _ticked(rt, "remove_attachment", em.name, record_id)
    for att_id in ids:
        rt.store.remove(rt.session, att_id)
    rt.session.commit()
    return len(ids)
