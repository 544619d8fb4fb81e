"""The case lifecycle as a pure state machine (no database), so every rule is testable on its own.

    已受理 → 审查中 ⇄ 需补正 (clock paused) ; 审查中 → 已办结 | 不予许可 ; 已办结 → 已领取
    已撤回 from any open state (已受理, 审查中, 需补正)

Every case has one step per department that approves it: one for an ordinary item, one per member
department for a 一件事 bundle (parallel approval, one lead department). Review events move steps;
the case status is *derived* from its steps, so a bundle is 已办结 only when every department has
approved. A rejection by any department makes the whole case 不予许可: the bundle promised one
outcome (e.g. opening the restaurant), which can no longer be delivered; the applicant is told
which department refused and why, and may apply again for the parts that remain possible.
Case-level events (已领取, 已撤回) apply to the case as a whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class CaseStatus(StrEnum):
    # Values are the integration API's words; `label` is what people read.
    ACCEPTED = "accepted"
    IN_REVIEW = "in_review"
    CORRECTION_REQUIRED = "correction_required"
    COMPLETED = "completed"
    REJECTED = "rejected"
    PICKED_UP = "picked_up"
    WITHDRAWN = "withdrawn"

    @property
    def label(self) -> str:
        return LABELS[self]


LABELS: dict[CaseStatus, str] = {
    CaseStatus.ACCEPTED: "已受理",
    CaseStatus.IN_REVIEW: "审查中",
    CaseStatus.CORRECTION_REQUIRED: "需补正",
    CaseStatus.COMPLETED: "已办结",
    CaseStatus.REJECTED: "不予许可",
    CaseStatus.PICKED_UP: "已领取",
    CaseStatus.WITHDRAWN: "已撤回",
}
_BY_WORD = {s.value: s for s in CaseStatus} | {label: s for s, label in LABELS.items()}

OPEN = frozenset({CaseStatus.ACCEPTED, CaseStatus.IN_REVIEW, CaseStatus.CORRECTION_REQUIRED})
# The promise clock runs only in these; 需补正 stops it (行政许可法: 补正时间不计入审批期限).
CLOCK_RUNNING = frozenset({CaseStatus.ACCEPTED, CaseStatus.IN_REVIEW})
STEP_EVENTS = frozenset(
    {CaseStatus.IN_REVIEW, CaseStatus.CORRECTION_REQUIRED, CaseStatus.COMPLETED, CaseStatus.REJECTED}
)
STEP_FINISHED = frozenset({CaseStatus.COMPLETED, CaseStatus.REJECTED, CaseStatus.WITHDRAWN})

# Where each status may go; the one table both the API docs and the staff buttons follow.
CASE_TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.ACCEPTED: frozenset({CaseStatus.IN_REVIEW, CaseStatus.WITHDRAWN}),
    CaseStatus.IN_REVIEW: frozenset(
        {CaseStatus.CORRECTION_REQUIRED, CaseStatus.COMPLETED, CaseStatus.REJECTED, CaseStatus.WITHDRAWN}
    ),
    CaseStatus.CORRECTION_REQUIRED: frozenset({CaseStatus.IN_REVIEW, CaseStatus.WITHDRAWN}),
    CaseStatus.COMPLETED: frozenset({CaseStatus.PICKED_UP}),
    CaseStatus.REJECTED: frozenset(),
    CaseStatus.PICKED_UP: frozenset(),
    CaseStatus.WITHDRAWN: frozenset(),
}
STEP_TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.ACCEPTED: frozenset({CaseStatus.IN_REVIEW}),
    CaseStatus.IN_REVIEW: frozenset(
        {CaseStatus.CORRECTION_REQUIRED, CaseStatus.COMPLETED, CaseStatus.REJECTED}
    ),
    CaseStatus.CORRECTION_REQUIRED: frozenset({CaseStatus.IN_REVIEW}),
}


class Refused(Exception):
    """An event that the lifecycle does not allow; `reason` is a Chinese sentence for the user."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def parse_status(word: str) -> CaseStatus:
    """API word ('completed') or Chinese label ('已办结'); raises Refused for anything else."""
    status = _BY_WORD.get((word or "").strip())
    if status is None:
        raise Refused(f"未知状态「{word}」，可用：{' | '.join(s.value for s in CaseStatus)}")
    return status


@dataclass(frozen=True)
class StepState:
    department: str  # department id
    department_name: str
    status: CaseStatus


@dataclass(frozen=True)
class Decision:
    case_status: CaseStatus
    step_changes: dict[str, CaseStatus]  # department id -> new step status


def decide(
    case_status: CaseStatus,
    steps: Sequence[StepState],
    status: CaseStatus,
    department: str | None = None,
    *,
    note: str | None = None,
    missing_materials: Sequence[str] | None = None,
) -> Decision:
    """What an event does to a case, or Refused(reason) when the lifecycle forbids it."""
    if department is not None and not any(s.department == department for s in steps):
        raise Refused("该件没有这个部门的审批环节")
    if case_status in (CaseStatus.REJECTED, CaseStatus.PICKED_UP, CaseStatus.WITHDRAWN) or (
        case_status == CaseStatus.COMPLETED and status != CaseStatus.PICKED_UP
    ):
        if status == case_status:
            raise Refused(f"该件已是「{status.label}」")
        raise Refused(f"该件已「{case_status.label}」，不能再改为「{status.label}」")
    if status == CaseStatus.ACCEPTED:
        raise Refused("该件已受理，无需重复受理")
    if status == CaseStatus.PICKED_UP:
        if case_status != CaseStatus.COMPLETED:
            raise Refused(f"该件尚未办结（当前：{case_status.label}），不能登记领取")
        return Decision(CaseStatus.PICKED_UP, {})
    if status == CaseStatus.WITHDRAWN:
        return Decision(
            CaseStatus.WITHDRAWN,
            {s.department: CaseStatus.WITHDRAWN for s in steps if s.status not in STEP_FINISHED},
        )
    if status == CaseStatus.CORRECTION_REQUIRED and not (
        any(m.strip() for m in missing_materials or []) or (note or "").strip()
    ):
        raise Refused("需补正须一次性列明需要补正的全部材料")
    if status == CaseStatus.REJECTED and not (note or "").strip():
        raise Refused("不予许可须写明理由")

    targets = _targets(steps, status, department)
    changes: dict[str, CaseStatus] = {}
    for step in targets:
        where = "" if len(steps) == 1 else f"{step.department_name}："
        if step.status == status:
            raise Refused(f"{where}已是「{status.label}」")
        if status not in STEP_TRANSITIONS.get(step.status, frozenset()):
            raise Refused(where + _why_not(step.status, status))
        changes[step.department] = status
    new_steps = [changes.get(s.department, s.status) for s in steps]
    return Decision(derive_status(new_steps), changes)


def derive_status(step_statuses: Sequence[CaseStatus]) -> CaseStatus:
    """The case status its department steps add up to (parallel approval)."""
    if any(s == CaseStatus.REJECTED for s in step_statuses):
        return CaseStatus.REJECTED
    if step_statuses and all(s == CaseStatus.COMPLETED for s in step_statuses):
        return CaseStatus.COMPLETED
    if any(s == CaseStatus.CORRECTION_REQUIRED for s in step_statuses):
        return CaseStatus.CORRECTION_REQUIRED
    if any(s in (CaseStatus.IN_REVIEW, CaseStatus.COMPLETED) for s in step_statuses):
        return CaseStatus.IN_REVIEW
    return CaseStatus.ACCEPTED


def _targets(steps: Sequence[StepState], status: CaseStatus, department: str | None) -> list[StepState]:
    if department is not None:
        return [s for s in steps if s.department == department]
    if len(steps) == 1:
        return list(steps)
    # The comprehensive window (综合窗口) dispatches a bundle to every department at once.
    if status == CaseStatus.IN_REVIEW:
        waiting = [s for s in steps if s.status == CaseStatus.ACCEPTED]
        if waiting:
            return waiting
    raise Refused("这是多部门联办件，请指明是哪个部门的审批结果")


def _why_not(current: CaseStatus, wanted: CaseStatus) -> str:
    if current == CaseStatus.ACCEPTED:
        return f"尚未开始审查，请先「开始审查」再改为「{wanted.label}」"
    if current == CaseStatus.CORRECTION_REQUIRED:
        return "正在等待申请人补正材料，收到补正后请先恢复「审查中」"
    if current in STEP_FINISHED:
        return f"审批已结束（{current.label}），不能再改为「{wanted.label}」"
    return f"不能从「{current.label}」改为「{wanted.label}」"
