"""The approval engine's refusal codes (WF0xx), declared once in the CODES catalogue.

The kind decides the HTTP status (engines/refusals.py): ``forbidden`` is about
who asks (403), ``invalid`` about one field of the request (422 on that
field), ``conflict`` about what the workflow's state allows now (409). The
web layer never looks at a message's words. The README's "Refusal codes"
table lists them.
"""
from __future__ import annotations

from danbao.engines.refusals import refusal_code

# -- who is asking (403) ---------------------------------------------------------------
NOT_YOUR_TASK = refusal_code("WF001", "forbidden", "the task belongs to someone else")
OWN_APPLICATION = refusal_code("WF002", "forbidden", "nobody approves an application they submitted")
ONLY_APPLICANT = refusal_code("WF003", "forbidden", "only the applicant may withdraw or resubmit")
ONLY_CHAIRMAN = refusal_code("WF004", "forbidden", "only the committee's chairman may close the meeting")
MAY_NOT_START = refusal_code("WF005", "forbidden", "the user is not one of the workflow's starters")
SEPARATED = refusal_code("WF006", "forbidden",
                         "separation of duties: the user approved a step this one is separate_from")
RECUSED = refusal_code("WF007", "forbidden", "recusal: the user is connected to the application (recuse fields)")

# -- one field of the request (422) -------------------------------------------------------
UNKNOWN_ACTION = refusal_code("WF010", "invalid", "an action the engine does not know (field action)")
COMMENT_REQUIRED = refusal_code("WF011", "invalid",
                                "reject, return, comment and votes need a comment; no control characters (field comment)")
BAD_VOTE = refusal_code("WF012", "invalid", "a vote other than agree, disagree or defer (field vote)")
NOT_A_RETURN_TARGET = refusal_code("WF013", "invalid",
                                   "a return to a step not passed on the current path, the current step, a step "
                                   "ahead, or to the applicant where the workflow allows none (field target_step)")
BAD_COLLEAGUE = refusal_code("WF014", "invalid",
                             "delegate/add_approver to oneself, the applicant, an unknown or inactive user, someone "
                             "already asked, or someone separation or recusal excludes (field user_id)")

# -- what the state allows now (409) ---------------------------------------------------------
CANNOT_START = refusal_code("WF020", "conflict", "the workflow cannot start now: its condition does not hold, "
                                                 "the record's product names another route, or its group is running")
MOVED_ON = refusal_code("WF021", "conflict", "the task is done or the workflow has moved on")
VOTE_INSTEAD = refusal_code("WF022", "conflict", "approve or reject at a committee step (vote instead)")
NOT_A_COMMITTEE = refusal_code("WF023", "conflict", "a vote, or closing a meeting, where no committee meeting is open")
FINISHED = refusal_code("WF024", "conflict", "the workflow has finished")
NO_WITHDRAW = refusal_code("WF025", "conflict", "the workflow declares no withdraw_to, or someone has acted already")
NOBODY = refusal_code("WF026", "conflict", "the step would ask nobody: no active user holds its roles or fields")
NOBODY_LEFT = refusal_code("WF027", "conflict",
                           "the step would ask nobody once separation of duties and recusal exclude people")
REQUIRES = refusal_code("WF028", "conflict", "the step's requires condition does not hold (its requires_message)")
NO_ROUTE = refusal_code("WF029", "conflict", "no transition out of the step applies")
OLD_VERSION = refusal_code("WF030", "conflict", "a condition of the record's older workflow version no longer fits "
                                                "the data structure")
NOT_WITH_APPLICANT = refusal_code("WF031", "conflict", "resubmit while the record is not returned to the applicant")
STEP_ACTION = refusal_code("WF032", "conflict", "an engine action of the step refused (e.g. the fee plan cannot be "
                                                "made)")
