"""Danbao's own bookkeeping tables, added to every build's MetaData.

They are not entities: metadata cannot change them, and the migration planner
creates them (and an index a newer build adds to one) but never proposes to
alter or drop them.
"""
from __future__ import annotations

import datetime
import json
from collections.abc import Mapping

from sqlalchemy import (BigInteger, Boolean, Column, Date, DateTime, ForeignKey, Index, Integer,
                        MetaData, Numeric, PrimaryKeyConstraint, SmallInteger, String, Table, Text, case,
                        func, select)

from danbao.meta.model import Label
from danbao.model.operations import MigrationRefused

AUDIT_TABLE = "danbao_audit"
ATTACHMENT_TABLE = "danbao_attachment"
SCHEMA_STATE_TABLE = "danbao_schema_state"
WARNING_TABLE = "danbao_warning"
WARNING_SCAN_TABLE = "danbao_warning_scan"
WARNING_OPEN_INDEX = "ux_danbao_warning_open"
SCORE_TABLE = "danbao_score"
SCORE_ITEM_TABLE = "danbao_score_item"
WF_INSTANCE_TABLE = "danbao_wf_instance"
WF_TASK_TABLE = "danbao_wf_task"
WF_ACTION_TABLE = "danbao_wf_action"
WF_VOTE_TABLE = "danbao_wf_vote"
LEDGER_TABLE = "danbao_ledger_entry"
LEDGER_REVERSES_INDEX = "ux_danbao_ledger_entry_reverses"
SEQUENCE_TABLE = "danbao_sequence"
DOCUMENT_TAG_TABLE = "danbao_document_tag"
SENSITIVE_VIEW_TABLE = "danbao_sensitive_view"
SYSTEM_TABLES = (AUDIT_TABLE, ATTACHMENT_TABLE, SCHEMA_STATE_TABLE, WARNING_TABLE, WARNING_SCAN_TABLE,
                 SCORE_TABLE, SCORE_ITEM_TABLE, WF_INSTANCE_TABLE, WF_TASK_TABLE, WF_ACTION_TABLE, WF_VOTE_TABLE,
                 LEDGER_TABLE, SEQUENCE_TABLE, DOCUMENT_TAG_TABLE, SENSITIVE_VIEW_TABLE)


def close_duplicate_open_warnings(conn, table: Table) -> int:
    """Close all but the first open warning per (rule, record); how many were closed."""
    first = (select(func.min(table.c.id)).where(table.c.status == "open")
             .group_by(table.c.rule, table.c.record_id))
    result = conn.execute(table.update().where(table.c.status == "open", table.c.id.not_in(first))
                          .values(status="closed", closed_at=datetime.datetime.now()))
    return result.rowcount


def add_system_tables(metadata: MetaData, ledger_effects: Mapping[str, Mapping[str, int]] | None = None
                      ) -> dict[str, Table]:
    """Define the system tables on ``metadata`` and return them by name.

    ``ledger_effects`` (ledger kind -> its effects, from the metadata) is what
    the ledger's ``effects`` column gives old rows when a migration adds it."""
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
        # the root record's version this change produced: a stale edit whose
        # fields nobody else changed since can still be saved (records.py);
        # empty on rows written before the column existed
        Column("root_version", Integer),
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
    # which document a file is (营业执照, 征信报告 …): a code of the `document_kind`
    # code list, at most one per attachment; see engines/documents.py
    document_tag = Table(
        DOCUMENT_TAG_TABLE, metadata,
        Column("attachment_id", Integer, ForeignKey(f"{ATTACHMENT_TABLE}.id", ondelete="CASCADE",
                                                    name="fk_danbao_document_tag_attachment_id"), primary_key=True),
        Column("doc_kind", String(64), nullable=False),
        Column("tagged_by_id", Integer),
        Column("tagged_at", DateTime, nullable=False),
    )
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
    # at most one open warning per rule and record, even when two scans race
    # (two server processes); existing databases get it through the planner
    # ("add_system_index"), which first closes duplicates an old race left
    open_only = warning.c.status == "open"
    Index(WARNING_OPEN_INDEX, warning.c.rule, warning.c.record_id, unique=True,
          sqlite_where=open_only, postgresql_where=open_only,
          info={"prepare": close_duplicate_open_warnings})
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
    score, score_item = _score_tables(metadata)
    workflow_tables = _workflow_tables(metadata)
    return {AUDIT_TABLE: audit, ATTACHMENT_TABLE: attachment, SCHEMA_STATE_TABLE: state,
            WARNING_TABLE: warning, WARNING_SCAN_TABLE: scan, SCORE_TABLE: score, SCORE_ITEM_TABLE: score_item,
            **workflow_tables, LEDGER_TABLE: _ledger_table(metadata, ledger_effects or {}),
            SEQUENCE_TABLE: _sequence_table(metadata),
            DOCUMENT_TAG_TABLE: document_tag, SENSITIVE_VIEW_TABLE: _sensitive_view_table(metadata)}


def _score_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Credit scores (资信评估) are history: one row per scoring, never updated,
    with one item row per indicator holding what a risk officer needs to
    follow the result (input, points, weight, why it could not be computed).
    Labels are copied in so an old score still reads right after the card changes."""
    score = Table(
        SCORE_TABLE, metadata,
        Column("id", Integer, primary_key=True),
        Column("scorecard", String(64), nullable=False),
        Column("scorecard_version", String(32), nullable=False),
        Column("label_zh", String(200), nullable=False),
        Column("label_en", String(200), nullable=False),
        Column("entity", String(64), nullable=False),
        Column("record_id", Integer, nullable=False),
        Column("as_of", Date, nullable=False),
        Column("total", Numeric(7, 2), nullable=False),
        Column("grade", String(16), nullable=False),
        Column("grade_before_cap", String(16), nullable=False),
        Column("knockouts", Text, nullable=False),            # JSON [{code, label_zh, label_en, cap}]
        Column("statement_period", Date),                     # the latest statement used, if any
        Column("scored_at", DateTime, nullable=False),
        Column("scored_by_id", Integer),
        Column("scored_by", String(256), nullable=False),
        Column("meta_version", String(200), nullable=False),
    )
    Index("ix_danbao_score_record", score.c.entity, score.c.record_id)
    item = Table(
        SCORE_ITEM_TABLE, metadata,
        Column("id", Integer, primary_key=True),
        Column("score_id", Integer, ForeignKey(f"{SCORE_TABLE}.id", ondelete="CASCADE",
                                               name="fk_danbao_score_item_score_id"), nullable=False),
        Column("position", Integer, nullable=False),
        Column("code", String(64), nullable=False),
        Column("group_key", String(64), nullable=False),
        Column("label_zh", String(200), nullable=False),
        Column("label_en", String(200), nullable=False),
        Column("input", Boolean, nullable=False),             # entered by the analyst
        Column("value", Text),                                # the computed or entered value, as text
        Column("value_label_zh", String(200)),                # an option's label
        Column("value_label_en", String(200)),
        Column("band", String(80)),                           # the band the value fell in: "40 ≤ x < 55"
        Column("computable", Boolean, nullable=False),
        Column("reason_zh", Text),
        Column("reason_en", Text),
        Column("missing_rule", String(16)),                   # how a not-computable indicator was scored
        Column("points", Numeric(7, 2), nullable=False),
        Column("weight", Numeric(7, 2), nullable=False),
        Column("weighted", Numeric(7, 2), nullable=False),
    )
    Index("ix_danbao_score_item_score", item.c.score_id)
    return score, item


def _workflow_tables(metadata: MetaData) -> dict[str, Table]:
    """Approval workflows: one instance per record and process, its tasks (one
    per person asked to act at a step; ``round`` counts entries into steps so
    a returned or deferred step starts fresh), the append-only action log and
    committee votes. ``lock`` is bumped by every state change under a
    compare-and-set, so two people acting at once give exactly one transition."""
    instance = Table(
        WF_INSTANCE_TABLE, metadata,
        Column("id", Integer, primary_key=True),
        Column("workflow", String(64), nullable=False),
        Column("workflow_version", String(32), nullable=False),
        Column("digest", String(64), nullable=False),
        Column("definition", Text, nullable=False),        # the workflow as it was when the record started
        Column("entity", String(64), nullable=False),
        Column("record_id", Integer, nullable=False),
        Column("state", String(16), nullable=False),       # running | approved | rejected | withdrawn
        Column("step", String(64), nullable=False),
        Column("round", Integer, nullable=False),
        Column("step_entered_at", DateTime, nullable=False),
        Column("started_by_id", Integer),
        Column("started_by", String(256), nullable=False),
        Column("started_at", DateTime, nullable=False),
        Column("finished_at", DateTime),
        Column("lock", Integer, nullable=False),
    )
    Index("ix_danbao_wf_instance_record", instance.c.entity, instance.c.record_id)
    Index("ix_danbao_wf_instance_state", instance.c.state)
    task = Table(
        WF_TASK_TABLE, metadata,
        Column("id", Integer, primary_key=True),
        Column("instance_id", Integer, ForeignKey(f"{WF_INSTANCE_TABLE}.id", ondelete="CASCADE",
                                                  name="fk_danbao_wf_task_instance_id"), nullable=False),
        Column("step", String(64), nullable=False),
        Column("round", Integer, nullable=False),
        Column("position", Integer, nullable=False),       # order for mode: sequence
        Column("user_id", Integer, nullable=False),
        Column("status", String(16), nullable=False),      # open | waiting | approved | rejected | voted | delegated | closed
        Column("created_at", DateTime, nullable=False),
        Column("due_at", DateTime),
        Column("reminded_at", DateTime),
        Column("escalated", Boolean, nullable=False, default=False),
        Column("acted_at", DateTime),
        Column("delegated_from_id", Integer),
        Column("delegated_until", DateTime),
        Column("added_by_id", Integer),
    )
    Index("ix_danbao_wf_task_user_status", task.c.user_id, task.c.status)
    Index("ix_danbao_wf_task_instance", task.c.instance_id, task.c.round)
    action = Table(
        WF_ACTION_TABLE, metadata,
        Column("id", Integer, primary_key=True),
        Column("instance_id", Integer, ForeignKey(f"{WF_INSTANCE_TABLE}.id", ondelete="CASCADE",
                                                  name="fk_danbao_wf_action_instance_id"), nullable=False),
        Column("task_id", Integer),
        Column("step", String(64), nullable=False),
        Column("round", Integer, nullable=False),
        Column("action", String(16), nullable=False),
        Column("target_step", String(64)),
        Column("user_id", Integer),
        Column("username", String(256), nullable=False),
        Column("comment", Text),
        Column("at", DateTime, nullable=False),
        Column("workflow_version", String(32), nullable=False),
        Column("digest", String(64), nullable=False),
    )
    Index("ix_danbao_wf_action_instance", action.c.instance_id)
    Index("ix_danbao_wf_action_user", action.c.user_id)
    vote = Table(
        WF_VOTE_TABLE, metadata,
        Column("id", Integer, primary_key=True),
        Column("instance_id", Integer, ForeignKey(f"{WF_INSTANCE_TABLE}.id", ondelete="CASCADE",
                                                  name="fk_danbao_wf_vote_instance_id"), nullable=False),
        Column("task_id", Integer, nullable=False),
        Column("step", String(64), nullable=False),
        Column("round", Integer, nullable=False),
        Column("user_id", Integer, nullable=False),
        Column("username", String(256), nullable=False),
        Column("vote", String(16), nullable=False),        # agree | disagree | defer
        Column("chairman", Boolean, nullable=False),
        Column("comment", Text, nullable=False),
        Column("at", DateTime, nullable=False),
    )
    Index("ix_danbao_wf_vote_meeting", vote.c.instance_id, vote.c.round)
    return {WF_INSTANCE_TABLE: instance, WF_TASK_TABLE: task, WF_ACTION_TABLE: action, WF_VOTE_TABLE: vote}


def ledger_effects_text(effects: Mapping[str, int]) -> str:
    """An entry's effects as its row keeps them: compact JSON with sorted keys,
    so equal effects are equal text (balances are summed grouped by it)."""
    return json.dumps({balance: int(sign) for balance, sign in sorted(effects.items())}, separators=(",", ":"))


def unpinned_ledger_refusal(kind: str, count: int) -> Label:
    """Why entries whose effects were never pinned cannot be counted: their kind is gone."""
    return Label(f"台账类型“{kind}”已不在元数据中，但有 {count} 条该类型的分录没有记录其对余额的影响"
                 f"（effects）：请在元数据中恢复该类型（保持原来的 effects）后再升级，之后可以删除它",
                 f"the ledger kind '{kind}' is no longer declared in the metadata, but {count} entries of it "
                 f"have no recorded balance effects: declare the kind again (with its former effects) and "
                 f"upgrade; it can be removed afterwards")


def unpinned_ledger_kinds(conn, table: Table, declared, *, column_added: bool = True) -> dict[str, int]:
    """Kinds not in ``declared`` that entries without pinned effects have, with how many
    entries (before the ``effects`` column is added, every entry is unpinned)."""
    query = select(table.c.kind, func.count()).group_by(table.c.kind).order_by(table.c.kind)
    if column_added:
        query = query.where(table.c.effects.is_(None))
    return {kind: count for kind, count in conn.execute(query) if kind not in declared}


def _pin_ledger_effects(kinds: Mapping[str, Mapping[str, int]]):
    """The backfill of ``effects`` when a migration adds it: each old row gets
    its kind's effects as the metadata being migrated to declares them (what
    it counted with until then). Entries of a kind the metadata no longer
    declares cannot be pinned: the migration is refused (and rolled back),
    naming the kind and how many entries, rather than let them drop out of
    the balances."""
    texts = {code: ledger_effects_text(effects) for code, effects in kinds.items()}

    def backfill(conn, table: Table) -> None:
        if texts:
            conn.execute(table.update().where(table.c.effects.is_(None), table.c.kind.in_(list(texts)))
                         .values(effects=case(texts, value=table.c.kind)))
        left = unpinned_ledger_kinds(conn, table, texts)
        if left:
            raise MigrationRefused([unpinned_ledger_refusal(kind, n) for kind, n in left.items()])
    return backfill


def _undeclared_kinds_before_pinning(kinds: Mapping[str, Mapping[str, int]]):
    """What ``db plan`` says of adding ``effects``: blocked, with the backfill's reason,
    when entries of kinds the metadata no longer declares exist (every row is unpinned
    before the column exists)."""
    def blocked_by(conn, table: Table) -> list[Label]:
        left = unpinned_ledger_kinds(conn, table, kinds, column_added=False)
        return [unpinned_ledger_refusal(kind, n) for kind, n in left.items()]
    return blocked_by


def _ledger_table(metadata: MetaData, kinds: Mapping[str, Mapping[str, int]]) -> Table:
    """The ledger (台账): money movements of projects, booked maker-checker.

    An entry is made, checked and confirmed by three different people (or
    rejected on the way); only confirmed entries count in balances, and a
    confirmed entry is never changed: a mistake is undone by a reversal, a new
    entry with ``direction`` -1 naming it in ``reverses_id``. At most one
    reversal that is not rejected exists per entry (a partial unique index, so
    two people reversing at once cannot both succeed, and a rejected reversal
    does not block a new one). ``lock_version`` is bumped by every state change
    under a compare-and-set. ``effects`` pins the balances an entry moves
    (its kind's effects when it was made, JSON ``{"deposit_held":1}``), so
    editing or removing a kind in the metadata never changes what existing
    entries count for; it is empty only on rows written before the column
    existed and not backfilled (see ``_pin_ledger_effects``). See engines/ledger.py."""
    ledger = Table(
        LEDGER_TABLE, metadata,
        Column("id", Integer, primary_key=True),
        Column("project_entity", String(64), nullable=False),
        Column("project_id", Integer, nullable=False),
        Column("customer_entity", String(64)),                 # the project's customer when it was made
        Column("customer_id", Integer),
        Column("kind", String(64), nullable=False),            # a ledger_kinds code
        Column("amount", Numeric(18, 2, asdecimal=True), nullable=False),
        Column("direction", SmallInteger, nullable=False),     # +1, or -1 for a reversal
        # balance -> +1/-1 as of making (a reversal: those of the entry it reverses)
        Column("effects", Text, info={"backfill": _pin_ledger_effects(kinds),
                                      "blocked_by": _undeclared_kinds_before_pinning(kinds)}),
        Column("state", String(16), nullable=False),           # made | checked | confirmed | rejected
        Column("booked_on", Date, nullable=False),
        Column("note", Text, nullable=False, default=""),
        Column("made_by_id", Integer, nullable=False),
        Column("made_at", DateTime, nullable=False),
        Column("checked_by_id", Integer),
        Column("checked_at", DateTime),
        Column("confirmed_by_id", Integer),
        Column("confirmed_at", DateTime),
        Column("rejected_by_id", Integer),
        Column("rejected_at", DateTime),
        Column("reject_reason", Text),
        Column("reverses_id", Integer, ForeignKey(f"{LEDGER_TABLE}.id", ondelete="RESTRICT",
                                                  name="fk_danbao_ledger_entry_reverses_id")),
        Column("meta_version", String(200), nullable=False),
        Column("lock_version", Integer, nullable=False, default=0),
    )
    Index("ix_danbao_ledger_entry_project", ledger.c.project_id)
    Index("ix_danbao_ledger_entry_customer", ledger.c.customer_entity, ledger.c.customer_id)
    Index("ix_danbao_ledger_entry_state", ledger.c.state)
    live = ledger.c.state != "rejected"
    Index(LEDGER_REVERSES_INDEX, ledger.c.reverses_id, unique=True, sqlite_where=live, postgresql_where=live)
    return ledger


def _sequence_table(metadata: MetaData) -> Table:
    """Counters for record numbers (DB-2026-00042): one row per rule and scope
    (the period the rule restarts in). See engines/sequences.py."""
    return Table(
        SEQUENCE_TABLE, metadata,
        Column("name", String(128), nullable=False),
        Column("scope", String(64), nullable=False),
        Column("value", BigInteger, nullable=False),
        PrimaryKeyConstraint("name", "scope", name="pk_danbao_sequence"),
    )


def _sensitive_view_table(metadata: MetaData) -> Table:
    """Who saw which record's ID numbers, phones or bank accounts in clear, and
    when (page, list, api): the trail 个人信息保护 asks for. Append-only; see
    engines/masking.py. A database from before it gets it from the planner
    (``create_system_table``)."""
    table = Table(
        SENSITIVE_VIEW_TABLE, metadata,
        Column("id", Integer, primary_key=True),
        Column("at", DateTime, nullable=False),
        Column("user_id", Integer),
        Column("username", String(256), nullable=False),
        Column("entity", String(64), nullable=False),
        Column("record_id", Integer, nullable=False),
        Column("channel", String(16), nullable=False),      # page | list | api
    )
    Index("ix_danbao_sensitive_view_record", table.c.entity, table.c.record_id)
    Index("ix_danbao_sensitive_view_user", table.c.user_id, table.c.at)
    return table
