"""One transaction per engine action: everything the block did is committed, or none of it."""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def all_or_nothing(session):
    """Commit what the block did, or roll all of it back (and re-raise)."""
    try:
        yield
        session.commit()
    except Exception:
        session.rollback()
        raise
