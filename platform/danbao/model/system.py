"""Danbao's own bookkeeping tables, added to every build's MetaData.

They are not entities: metadata cannot change them, and the migration planner
creates them but never proposes to alter or drop them.
"""
from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, Column, Date, DateTime, Index, Integer,
                        MetaData, String, Table, Text)

AUDIT_TABLE = "danbao_audit"
ATTACHMENT_TABLE = "danbao_attachment"
SCHEMA_STATE_TABLE = "danbao_schema_state"
WARNING_TABLE = "danbao_warning"
WARNING_SCAN_TABLE = "danbao_warning_scan"
SYSTEM_TABLES = (AUDIT_TABLE, ATTACHMENT_TABLE, SCHEMA_STATE_TABLE, WARNING_TABLE, WARNING_SCAN_TABLE)


def add_system_tables(metadata: MetaData) -> dict[str, Table]:
    """Define the system tables on ``metadata`` and return them by name."""
    audit = Table(
        AUDIT_TABLE, metadata,
        Column("id", Integer, primary_key=True),
        Column("at", DateTime, nullable=False),
        Column("user_id", Integer),
        Column("username", String(256)),
        Column("action", String(16), nullable=False),      # create | update | delete
        Column("entity", String(64), nullable=False),
        Column("record_id", Integer, nullable=False),
        # the top-level record whose page shows this row (a child's parent)
        Column("root_entity", String(64), nullable=False),
        Column("root_id", Integer, nullable=False),
        Column("field", String(64)),
        Column("old_value", Text),
        Column("new_value", Text),
        Column("meta_version", String(200), nullable=False),
    )
    Index("ix_danbao_audit_root", audit.c.root_entity, audit.c.root_id)
    attachment = Table(
        ATTACHMENT_TABLE, metadata,
        Column("id", Integer, primary_key=True),
        Column("entity", String(64), nullable=False),
        Column("record_id", Integer, nullable=False),
        Column("field", String(64), nullable=False),
        Column("filename", String(255), nullable=False),
        Column("content_type", String(128), nullable=False),
        Column("kind", String(16), nullable=False),          # image | document | audio | video
        Column("size", BigInteger, nullable=False),
        Column("sha256", String(64), nullable=False),
        Column("storage_key", String(255), nullable=False),  # path relative to the store root
        Column("uploaded_at", DateTime, nullable=False),
        Column("uploaded_by_id", Integer),
        Column("deleted", Boolean, nullable=False, default=False),
    )
    Index("ix_danbao_attachment_record", attachment.c.entity, attachment.c.record_id)
    state = Table(
        SCHEMA_STATE_TABLE, metadata,
        Column("id", Integer, primary_key=True),
        Column("applied_at", DateTime, nullable=False),
        Column("meta_version", String(200), nullable=False),
        Column("digest", String(64), nullable=False),
        # JSON list of the entity tables Danbao manages after this apply
        Column("tables", Text, nullable=False),
        Column("operations", Text, nullable=False),
    )
    warning = Table(
        WARNING_TABLE, metadata,
        Column("id", Integer, primary_key=True),
        Column("rule", String(64), nullable=False),
        Column("entity", String(64), nullable=False),
        Column("record_id", Integer, nullable=False),
        Column("level", String(16), nullable=False),
        Column("message_zh", Text, nullable=False),
        Column("message_en", Text, nullable=False),
        Column("status", String(16), nullable=False),        # open | closed
        Column("opened_at", DateTime, nullable=False),
        Column("opened_as_of", Date, nullable=False),         # the day the condition was found true
        Column("closed_at", DateTime),
        Column("acknowledged_at", DateTime),
        Column("acknowledged_by", String(256)),
        Column("ack_comment", Text),
        Column("meta_version", String(200), nullable=False),
    )
    Index("ix_danbao_warning_rule_status", warning.c.rule, warning.c.status)
    Index("ix_danbao_warning_record", warning.c.entity, warning.c.record_id)
    scan = Table(
        WARNING_SCAN_TABLE, metadata,
        Column("id", Integer, primary_key=True),
        Column("rule", String(64), nullable=False),
        Column("ran_at", DateTime, nullable=False),
        Column("as_of", Date, nullable=False),
        Column("matched", Integer, nullable=False),
        Column("opened", Integer, nullable=False),
        Column("closed", Integer, nullable=False),
    )
    Index("ix_danbao_warning_scan_rule", scan.c.rule, scan.c.as_of)
    return {AUDIT_TABLE: audit, ATTACHMENT_TABLE: attachment, SCHEMA_STATE_TABLE: state,
            WARNING_TABLE: warning, WARNING_SCAN_TABLE: scan}
