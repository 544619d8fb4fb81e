"""The lifecycle rules on their own: every allowed move, every refused one with its reason."""

from __future__ import annotations

import pytest

from models.lifecycle import (
    CASE_TRANSITIONS,
    CaseStatus,
    Refused,
    StepState,
    decide,
    parse_status,
)

S = CaseStatus
ONE = "scjg"


def single(status: CaseStatus) -> list[StepState]:
    """The one step of an ordinary item, in the state a case of that status has."""
    step = {S.PICKED_UP: S.COMPLETED}.get(status, status)
    return [StepState(ONE, "县市场监督管理局", step)]


def bundle(*statuses: CaseStatus) -> list[StepState]:
    names = [("scjg", "县市场监督管理局"), ("wsjk", "县卫生健康局"), ("xf", "县消防救援大队")]
    return [StepState(d, n, st) for (d, n), st in zip(names, statuses, strict=False)]


def args_for(status: CaseStatus) -> dict[str, object]:
    if status == S.CORRECTION_REQUIRED:
        return {"missing_materials": ["营业执照"]}
    if status == S.REJECTED:
        return {"note": "选址不符合规划"}
    return {}


ALLOWED = [(a, b) for a, targets in CASE_TRANSITIONS.items() for b in targets]
FORBIDDEN = [(a, b) for a in S for b in S if b not in CASE_TRANSITIONS[a]]


def test_the_documented_path_is_allowed() -> None:
    assert (S.ACCEPTED, S.IN_REVIEW) in ALLOWED
    assert (S.IN_REVIEW, S.CORRECTION_REQUIRED) in ALLOWED
    assert (S.CORRECTION_REQUIRED, S.IN_REVIEW) in ALLOWED
    assert (S.IN_REVIEW, S.COMPLETED) in ALLOWED
    assert (S.IN_REVIEW, S.REJECTED) in ALLOWED
    assert (S.COMPLETED, S.PICKED_UP) in ALLOWED
    for open_status in (S.ACCEPTED, S.IN_REVIEW, S.CORRECTION_REQUIRED):
        assert (open_status, S.WITHDRAWN) in ALLOWED


@pytest.mark.parametrize(("before", "after"), ALLOWED)
def test_allowed_transition_moves_a_single_item_case(before: CaseStatus, after: CaseStatus) -> None:
    decision = decide(before, single(before), after, **args_for(after))  # type: ignore[arg-type]
    assert decision.case_status == after


@pytest.mark.parametrize(("before", "after"), FORBIDDEN)
def test_forbidden_transition_is_refused_with_a_reason(before: CaseStatus, after: CaseStatus) -> None:
    with pytest.raises(Refused) as e:
        decide(before, single(before), after, **args_for(after))  # type: ignore[arg-type]
    assert e.value.reason  # a sentence for the user, never empty
    assert any("\u4e00" <= ch <= "\u9fff" for ch in e.value.reason)  # and in Chinese


@pytest.mark.parametrize(
    ("before", "after", "words"),
    [
        (S.ACCEPTED, S.COMPLETED, "开始审查"),
        (S.CORRECTION_REQUIRED, S.COMPLETED, "补正"),
        (S.ACCEPTED, S.PICKED_UP, "尚未办结"),
        (S.IN_REVIEW, S.PICKED_UP, "尚未办结"),
        (S.COMPLETED, S.WITHDRAWN, "已办结"),
        (S.WITHDRAWN, S.IN_REVIEW, "已撤回"),
        (S.IN_REVIEW, S.IN_REVIEW, "已是"),
        (S.ACCEPTED, S.ACCEPTED, "已受理"),
        (S.REJECTED, S.COMPLETED, "不予许可"),
    ],
)
def test_refusal_reason_names_the_problem(before: CaseStatus, after: CaseStatus, words: str) -> None:
    with pytest.raises(Refused, match=words):
        decide(before, single(before), after, **args_for(after))  # type: ignore[arg-type]


def test_correction_must_list_what_is_missing() -> None:
    with pytest.raises(Refused, match="一次性"):
        decide(S.IN_REVIEW, single(S.IN_REVIEW), S.CORRECTION_REQUIRED, missing_materials=["  "])
    ok = decide(S.IN_REVIEW, single(S.IN_REVIEW), S.CORRECTION_REQUIRED, note="身份证复印件不清晰")
    assert ok.case_status == S.CORRECTION_REQUIRED


def test_rejection_must_give_a_reason() -> None:
    with pytest.raises(Refused, match="理由"):
        decide(S.IN_REVIEW, single(S.IN_REVIEW), S.REJECTED)


def test_status_words_and_chinese_labels_both_parse() -> None:
    assert parse_status("completed") == S.COMPLETED
    assert parse_status("已办结") == S.COMPLETED
    with pytest.raises(Refused, match="未知状态"):
        parse_status("done")


def test_department_outside_the_case_is_refused() -> None:
    with pytest.raises(Refused, match="没有这个部门"):
        decide(S.IN_REVIEW, single(S.IN_REVIEW), S.COMPLETED, "wsjk")


# --- parallel approval (一件事 bundle) ---------------------------------------------------------------


def test_bundle_review_starts_at_every_department_when_none_is_named() -> None:
    d = decide(S.ACCEPTED, bundle(S.ACCEPTED, S.ACCEPTED, S.ACCEPTED), S.IN_REVIEW)
    assert d.case_status == S.IN_REVIEW
    assert set(d.step_changes) == {"scjg", "wsjk", "xf"}


def test_bundle_result_without_department_is_refused() -> None:
    with pytest.raises(Refused, match="指明"):
        decide(S.IN_REVIEW, bundle(S.IN_REVIEW, S.IN_REVIEW, S.IN_REVIEW), S.COMPLETED)


def test_bundle_completes_only_when_every_department_has_approved() -> None:
    steps = bundle(S.IN_REVIEW, S.IN_REVIEW, S.IN_REVIEW)
    first = decide(S.IN_REVIEW, steps, S.COMPLETED, "scjg")
    assert first.case_status == S.IN_REVIEW
    second = decide(S.IN_REVIEW, bundle(S.COMPLETED, S.IN_REVIEW, S.IN_REVIEW), S.COMPLETED, "wsjk")
    assert second.case_status == S.IN_REVIEW
    last = decide(S.IN_REVIEW, bundle(S.COMPLETED, S.COMPLETED, S.IN_REVIEW), S.COMPLETED, "xf")
    assert last.case_status == S.COMPLETED
    assert last.step_changes == {"xf": S.COMPLETED}


def test_one_department_rejecting_rejects_the_bundle() -> None:
    d = decide(
        S.IN_REVIEW, bundle(S.COMPLETED, S.IN_REVIEW, S.IN_REVIEW), S.REJECTED, "xf", note="疏散通道不足"
    )
    assert d.case_status == S.REJECTED


def test_a_correction_at_one_department_pauses_the_whole_bundle() -> None:
    d = decide(
        S.IN_REVIEW,
        bundle(S.IN_REVIEW, S.IN_REVIEW, S.IN_REVIEW),
        S.CORRECTION_REQUIRED,
        "wsjk",
        missing_materials=["健康证明"],
    )
    assert d.case_status == S.CORRECTION_REQUIRED
    # Another department finishing meanwhile does not restart the clock.
    d2 = decide(
        S.CORRECTION_REQUIRED, bundle(S.IN_REVIEW, S.CORRECTION_REQUIRED, S.IN_REVIEW), S.COMPLETED, "scjg"
    )
    assert d2.case_status == S.CORRECTION_REQUIRED
    # Review resumes at that department: the case is back in review.
    d3 = decide(
        S.CORRECTION_REQUIRED, bundle(S.COMPLETED, S.CORRECTION_REQUIRED, S.IN_REVIEW), S.IN_REVIEW, "wsjk"
    )
    assert d3.case_status == S.IN_REVIEW


def test_finished_department_cannot_change_its_result() -> None:
    with pytest.raises(Refused, match="县市场监督管理局"):
        decide(S.IN_REVIEW, bundle(S.COMPLETED, S.IN_REVIEW, S.IN_REVIEW), S.REJECTED, "scjg", note="x")


def test_withdrawal_closes_every_unfinished_step() -> None:
    d = decide(S.IN_REVIEW, bundle(S.COMPLETED, S.IN_REVIEW, S.CORRECTION_REQUIRED), S.WITHDRAWN)
    assert d.case_status == S.WITHDRAWN
    assert d.step_changes == {"wsjk": S.WITHDRAWN, "xf": S.WITHDRAWN}
