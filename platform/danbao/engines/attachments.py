"""Files attached to records, stored outside the database.

Files are content-addressed under the instance folder (``ab/abcdef…``) and
described by a row of ``danbao_attachment``. The kind (image, document,
audio, video) is decided from the extension *and* the first bytes, so a
renamed executable or an HTML page is refused; only kinds the field accepts
and sizes under its limit get in. Previews are served with the detected
type, never as HTML.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa

from danbao.engines.coerce import FieldError
from danbao.meta.model import FieldMeta

#: extension -> (kind, content type)
EXTENSIONS = {
    "png": ("image", "image/png"), "jpg": ("image", "image/jpeg"), "jpeg": ("image", "image/jpeg"),
    "gif": ("image", "image/gif"), "webp": ("image", "image/webp"), "bmp": ("image", "image/bmp"),
    "pdf": ("document", "application/pdf"), "txt": ("document", "text/plain; charset=utf-8"),
    "csv": ("document", "text/csv; charset=utf-8"),
    "doc": ("document", "application/msword"),
    "docx": ("document", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    "xls": ("document", "application/vnd.ms-excel"),
    "xlsx": ("document", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "ppt": ("document", "application/vnd.ms-powerpoint"),
    "pptx": ("document", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
    "odt": ("document", "application/vnd.oasis.opendocument.text"),
    "ods": ("document", "application/vnd.oasis.opendocument.spreadsheet"),
    "mp3": ("audio", "audio/mpeg"), "wav": ("audio", "audio/wav"), "m4a": ("audio", "audio/mp4"),
    "ogg": ("audio", "audio/ogg"), "aac": ("audio", "audio/aac"),
    "mp4": ("video", "video/mp4"), "webm": ("video", "video/webm"), "mov": ("video", "video/quicktime"),
}

#: leading bytes each format must start with (formats without a fixed header are checked for text)
MAGIC = {
    "png": [b"\x89PNG\r\n\x1a\n"], "jpg": [b"\xff\xd8\xff"], "jpeg": [b"\xff\xd8\xff"],
    "gif": [b"GIF87a", b"GIF89a"], "webp": [b"RIFF"], "bmp": [b"BM"], "pdf": [b"%PDF-"],
    "doc": [b"\xd0\xcf\x11\xe0"], "xls": [b"\xd0\xcf\x11\xe0"], "ppt": [b"\xd0\xcf\x11\xe0"],
    "docx": [b"PK\x03\x04"], "xlsx": [b"PK\x03\x04"], "pptx": [b"PK\x03\x04"],
    "odt": [b"PK\x03\x04"], "ods": [b"PK\x03\x04"],
    "mp3": [b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"], "wav": [b"RIFF"], "ogg": [b"OggS"],
    "webm": [b"\x1a\x45\xdf\xa3"],
}
#: formats whose header sits at byte 4 ("ftyp" boxes)
FTYP = {"mp4", "m4a", "mov"}
#: kinds a browser can show inline
PREVIEWABLE = {"image", "audio", "video"}
PREVIEWABLE_TYPES = {"application/pdf", "text/plain; charset=utf-8", "text/csv; charset=utf-8"}
CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredFile:
    id: int
    field: str
    filename: str
    content_type: str
    kind: str
    size: int
    path: Path

    @property
    def previewable(self) -> bool:
        return self.kind in PREVIEWABLE or self.content_type in PREVIEWABLE_TYPES


def classify(filename: str, head: bytes) -> tuple[str, str]:
    """Return (kind, content type) for a file, or raise FieldError."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if ext not in EXTENSIONS:
        raise FieldError(f"不支持的文件类型：.{ext or '?'}", f"file type not allowed: .{ext or '?'}")
    kind, content_type = EXTENSIONS[ext]
    if ext in FTYP:
        ok = head[4:8] == b"ftyp"
    elif ext in MAGIC:
        ok = any(head.startswith(m) for m in MAGIC[ext])
    else:  # txt, csv, aac: must at least not be binary markup or an executable
        ok = b"\x00" not in head and not head.lstrip().lower().startswith((b"<!doctype", b"<html", b"<script", b"mz"))
    if not ok:
        raise FieldError("文件内容与扩展名不符", "the file's content does not match its extension")
    return kind, content_type


@dataclass(frozen=True)
class StagedFile:
    """An upload that passed the checks and waits in a temporary file under the store."""
    field: FieldMeta
    filename: str
    kind: str
    content_type: str
    size: int
    sha256: str
    temp: Path


class AttachmentStore:
    def __init__(self, root: Path, table: sa.Table, *, max_upload_mb: int = 200):
        self.root = Path(root)
        self.table = table
        self.max_upload_mb = max_upload_mb

    def add(self, session, *, field: FieldMeta, entity: str, record_id: int, filename: str,
            stream: BinaryIO, user_id: int | None) -> int:
        """Store one upload for ``field`` of a record; return the attachment id.

        The file is streamed to a temporary file while hashing, so a too-large
        upload is refused without being kept, and a crash leaves no row
        pointing at a missing file.
        """
        self._check_count(session, field, entity, record_id)
        staged = self.stage(field=field, filename=filename, stream=stream)
        return self.add_staged(session, staged, entity=entity, record_id=record_id, user_id=user_id)

    def stage(self, *, field: FieldMeta, filename: str, stream: BinaryIO) -> "StagedFile":
        """Check one upload (size, kind by extension and content, the field's ``accept``)
        and keep it in a temporary file, before any record is saved: a form can then
        refuse a bad file without having written anything. Raises FieldError; call
        ``add_staged`` or ``discard`` with the result."""
        filename = os.path.basename(filename.replace("\\", "/")).strip() or "file"
        limit = min(field.max_size_mb or self.max_upload_mb, self.max_upload_mb) * 1024 * 1024
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        head = b""
        with tempfile.NamedTemporaryFile(dir=self.root, delete=False) as tmp:
            try:
                while chunk := stream.read(CHUNK):
                    if len(head) < 16:
                        head += chunk[:16]
                    size += len(chunk)
                    if size > limit:
                        raise FieldError(f"文件过大：不能超过 {limit // (1024 * 1024)} MB",
                                         f"file too large: at most {limit // (1024 * 1024)} MB")
                    digest.update(chunk)
                    tmp.write(chunk)
                if size == 0:
                    raise FieldError("文件为空", "the file is empty")
                kind, content_type = classify(filename, head)
                if field.accept and kind not in field.accept:
                    raise FieldError(f"此处只接受：{'、'.join(field.accept)}", f"only {', '.join(field.accept)} files here")
            except BaseException:
                os.unlink(tmp.name)
                raise
        return StagedFile(field=field, filename=filename, kind=kind, content_type=content_type, size=size,
                          sha256=digest.hexdigest(), temp=Path(tmp.name))

    def add_staged(self, session, staged: "StagedFile", *, entity: str, record_id: int, user_id: int | None) -> int:
        """Move a checked upload into the store and describe it; return the attachment id."""
        key = f"{staged.sha256[:2]}/{staged.sha256}"
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.temp, target)
        result = session.execute(self.table.insert().values(
            entity=entity, record_id=record_id, field=staged.field.name, filename=staged.filename,
            content_type=staged.content_type, kind=staged.kind, size=staged.size, sha256=staged.sha256,
            storage_key=key, uploaded_at=dt.datetime.now(), uploaded_by_id=user_id, deleted=False))
        return result.inserted_primary_key[0]

    @staticmethod
    def discard(staged: "StagedFile") -> None:
        """Drop a checked upload that will not be stored (the record was not saved)."""
        try:
            os.unlink(staged.temp)
        except FileNotFoundError:
            pass

    def count(self, session, field: FieldMeta, entity: str, record_id: int | None) -> int:
        """How many files ``field`` of a record holds now (0 for a record not saved yet)."""
        if record_id is None:
            return 0
        return session.execute(sa.select(sa.func.count()).select_from(self.table).where(
            self.table.c.entity == entity, self.table.c.record_id == record_id,
            self.table.c.field == field.name, self.table.c.deleted.is_(False))).scalar()

    def _check_count(self, session, field, entity, record_id) -> None:
        if not field.max_files:
            return
        if self.count(session, field, entity, record_id) >= field.max_files:
            raise FieldError(f"最多 {field.max_files} 个文件", f"at most {field.max_files} files")

    def list(self, session, entity: str, record_id: int) -> list[StoredFile]:
        rows = session.execute(sa.select(self.table).where(
            self.table.c.entity == entity, self.table.c.record_id == record_id,
            self.table.c.deleted.is_(False)).order_by(self.table.c.id)).all()
        return [self._stored(r) for r in rows]

    def list_many(self, session, entity: str, record_ids) -> dict[int, list[StoredFile]]:
        """The files of many records of one entity (a parent's child rows) in one query."""
        ids = sorted({i for i in record_ids if i is not None})
        out: dict[int, list[StoredFile]] = {i: [] for i in ids}
        if not ids:
            return out
        rows = session.execute(sa.select(self.table).where(
            self.table.c.entity == entity, self.table.c.record_id.in_(ids),
            self.table.c.deleted.is_(False)).order_by(self.table.c.id)).all()
        for r in rows:
            out[r.record_id].append(self._stored(r))
        return out

    def get(self, session, entity: str, record_id: int, attachment_id: int) -> StoredFile | None:
        row = session.execute(sa.select(self.table).where(
            self.table.c.id == attachment_id, self.table.c.entity == entity,
            self.table.c.record_id == record_id, self.table.c.deleted.is_(False))).first()
        return self._stored(row) if row else None

    def remove(self, session, attachment_id: int) -> None:
        """Mark as deleted; the file stays (another row may share it, and history keeps it)."""
        session.execute(self.table.update().where(self.table.c.id == attachment_id).values(deleted=True))

    def _stored(self, row) -> StoredFile:
        return StoredFile(id=row.id, field=row.field, filename=row.filename, content_type=row.content_type, kind=row.kind,
                          size=row.size, path=self.root / row.storage_key)
