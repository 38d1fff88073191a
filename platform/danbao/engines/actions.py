"""Engine actions a workflow step names in metadata (``actions: [generate_fee_schedule]``).

The loader knows the names (``danbao.meta.names.WORKFLOW_ACTIONS``); this module
maps them to the functions that do the work. An action runs when its step is
entered, inside the workflow's transaction: if it refuses, the step is not
entered and nothing is saved.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:   # records imports the business engine, which imports this module
    from danbao.engines.records import Actor, RecordService


@dataclass(frozen=True)
class ActionContext:
    """What an action sees: the record, who moved the workflow and when."""
    records: RecordService
    entity: str
    record_id: int
    actor: Actor
    now: dt.datetime


ACTIONS: dict[str, Callable[[ActionContext], None]] = {}


def workflow_action(name: str):
    """Decorator: the implementation of the step action ``name``."""
    def register(fn):
        ACTIONS[name] = fn
        return fn
    return register


def run_actions(names, context: ActionContext) -> None:
    from danbao.engines import business  # noqa: F401  (registers the built-in actions)
    for name in names:
        ACTIONS[name](context)
