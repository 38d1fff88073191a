"""The language of the current request, and Danbao's own UI strings.

Metadata labels carry zh and en themselves; the few fixed strings of the
generated screens live in ``UI`` below. FAB's own strings are covered by
the project's gettext catalog in ``danbao/translations``.
"""
from __future__ import annotations

from flask import has_request_context, session

from danbao.meta.model import Label

UI = {
    "add": ("新增", "Add"), "edit": ("编辑", "Edit"), "delete": ("删除", "Delete"),
    "show": ("查看", "Show"), "save": ("保存", "Save"), "cancel": ("取消", "Cancel"),
    "search": ("搜索", "Search"), "filter": ("筛选", "Filter"), "reset": ("重置", "Reset"),
    "all": ("全部", "All"), "yes": ("是", "Yes"), "no": ("否", "No"),
    "actions": ("操作", "Actions"), "records": ("条记录", "records"),
    "prev": ("上一页", "Previous"), "next": ("下一页", "Next"), "page": ("第 {page} / {pages} 页", "Page {page} of {pages}"),
    "no_records": ("暂无记录", "No records"), "add_row": ("添加一行", "Add a row"), "remove_row": ("删除此行", "Remove row"),
    "confirm_delete": ("确定删除这条记录吗？", "Delete this record?"),
    "saved": ("已保存", "Saved"), "deleted": ("已删除", "Deleted"), "created": ("已创建", "Created"),
    "fix_errors": ("保存失败：请修正标红的字段", "Not saved: please correct the fields marked in red"),
    "audit": ("修改记录", "Change history"), "when": ("时间", "When"), "who": ("操作人", "Who"),
    "action": ("动作", "Action"), "field": ("字段", "Field"), "old": ("原值", "Old value"), "new": ("新值", "New value"),
    "meta_version": ("元数据版本", "Metadata version"), "changes": ("变更内容", "What changed"),
    "n_changes": ("{n} 项变更", "{n} changes"), "all_changes": ("显示全部修改记录（另有 {n} 次保存）", "Show all changes ({n} more saves)"),
    "changes_cut": ("仅显示最近的修改记录", "Only the latest changes are shown"),
    "act_create": ("新建", "created"), "act_update": ("修改", "updated"), "act_delete": ("删除", "deleted"),
    "attachments_upload": ("上传文件", "Upload files"), "download": ("下载", "Download"),
    "preview": ("预览", "Preview"), "remove": ("移除", "Remove"), "no_files": ("暂无附件", "No files"),
    "forbidden": ("您没有权限执行此操作", "You are not allowed to do this"),
    "not_found": ("记录不存在", "No such record"),
    "workbench": ("工作台", "Workbench"), "my_recent": ("我最近修改的记录", "Records I changed recently"),
    "entities": ("业务数据", "Business data"), "count": ("记录数", "Records"),
    "created_at": ("创建时间", "Created"), "updated_at": ("更新时间", "Updated"), "version": ("版本", "Version"),
    "computed": ("保存时自动计算", "calculated on save"), "system_written": ("由系统写入", "written by the system"),
    "locked_now": ("当前阶段不可修改", "not to be changed at this stage"),
    "credit_scores": ("资信评估", "Credit rating"), "score_now": ("评分", "Score"),
    "scored": ("评分已保存", "Score saved"), "scorecard": ("评分卡", "Scorecard"),
    "as_of": ("评分日期", "Scoring date"), "total": ("总分", "Total"), "grade": ("等级", "Grade"),
    "grade_before_cap": ("封顶前等级", "Grade before caps"), "knockouts": ("否决/封顶条件", "Knock-outs"),
    "indicator": ("指标", "Indicator"), "value": ("取值", "Value"), "points": ("得分", "Points"),
    "weight": ("权重", "Weight"), "weighted": ("加权得分", "Weighted"), "not_computable": ("无法计算", "not computable"),
    "missing_rule": ("缺失处理", "Missing-value rule"), "rule_worst": ("按最低分", "lowest points"),
    "rule_points": ("按约定分", "fixed points"), "rule_exclude": ("不计入，权重分摊", "excluded, weight shared"),
    "scored_by": ("评分人", "Scored by"), "statement_period": ("所用报表期", "Statement used"),
    "none": ("无", "none"), "history": ("评分历史", "History"), "analyst_inputs": ("分析师录入指标", "Analyst inputs"),
    "formula_note": ("其余指标按客户资料和财务报表自动计算。", "The other indicators are calculated from the customer's data and statements."),
    "bad_date": ("日期格式应为 YYYY-MM-DD", "must be a date (YYYY-MM-DD)"),
    "future_date": ("不能晚于今天", "cannot be in the future"), "sum": ("合计", "Sum"),
    "files_not_kept": ("未保存，所选文件也未上传：请修正后重新选择文件", "Not saved, and the files chosen were not uploaded: choose them again"),
    "too_many_files": ("最多 {n} 个文件", "at most {n} files"),
    "from": ("从", "from"), "to": ("至", "to"), "language": ("English", "中文"),
}


def current_lang() -> str:
    """'zh' or 'en': the session's choice (FAB's language switch), Chinese by default."""
    if has_request_context():
        locale = str(session.get("locale") or "zh")
        return "en" if locale.startswith("en") else "zh"
    return "zh"


def t(key: str, **kwargs) -> str:
    zh, en = UI[key]
    text = en if current_lang() == "en" else zh
    return text.format(**kwargs) if kwargs else text


class LazyLabel:
    """A metadata label that renders in the request's language when printed.

    FAB's menu passes labels through gettext; an unknown object comes back
    unchanged, so its ``__str__`` decides at render time.
    """
    __slots__ = ("label",)

    def __init__(self, label: Label):
        self.label = label

    def __str__(self) -> str:
        return self.label.get(current_lang())

    def __html__(self) -> str:
        from markupsafe import escape
        return str(escape(str(self)))

    def __hash__(self) -> int:
        return hash(self.label)

    def __eq__(self, other) -> bool:
        return isinstance(other, LazyLabel) and other.label == self.label
