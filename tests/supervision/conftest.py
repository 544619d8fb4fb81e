"""Fixtures for supervision: the case domain's database fixtures (SQLite, and PostgreSQL when
TEST_DATABASE_URL is set), a recording renderer, and helpers to bring a case to 已办结."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from knowledge.schema import Catalog
from models import crud
from models.cases import Case
from models.crud import RenderedNotice
from models.workdays import WorkCalendar
from tests.cases.conftest import (  # noqa: F401  (fixtures re-used as they are)
    FOOD,
    NoticeRecorder,
    calendar,
    catalog,
    china,
    db_url,
    engine,
    render,
    session,
    sessions,
)

CITIZEN_CHAT = 900001


class SupervisionRecorder:
    """A SupervisionRender that writes '<kind>' notices and remembers each (kind, context)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Mapping[str, Any]]] = []

    def __call__(self, kind: str, context: Mapping[str, Any]) -> RenderedNotice:
        self.calls.append((kind, context))
        return RenderedNotice(text=kind, reply_markup={"inline_keyboard": []})

    def kinds(self) -> list[str]:
        return [k for k, _ in self.calls]


@pytest.fixture
def srender() -> SupervisionRecorder:
    return SupervisionRecorder()


async def finished_case(
    s: AsyncSession,
    cat: Catalog,
    cal: WorkCalendar,
    *,
    item: str = FOOD,
    accepted: dt.datetime,
    finished: dt.datetime,
    chat_id: int | None = CITIZEN_CHAT,
    outcome: str = "completed",
    correction: tuple[dt.datetime, dt.datetime] | None = None,
) -> Case:
    """A case accepted, reviewed (optionally paused for a correction) and decided at given times,
    with `chat_id` subscribed as the applicant's chat."""
    made = await crud.create_case(
        session=s,
        catalog=cat,
        item_name=item,
        applicant_name="张三",
        phone="13812345678",
        channel="window",
        now=accepted,
        calendar=cal,
    )
    case = made.case
    if chat_id is not None:
        await crud.subscribe(session=s, case=case, chat_id=chat_id, now=accepted)
    steps: list[tuple[str, dt.datetime, dict[str, Any]]] = [("in_review", accepted, {})]
    if correction is not None:
        steps += [
            ("correction_required", correction[0], {"missing_materials": ["营业执照"]}),
            ("in_review", correction[1], {}),
        ]
    steps.append((outcome, finished, {"note": "不符合条件"} if outcome == "rejected" else {}))
    for n, (status, at, extra) in enumerate(steps):
        result = await crud.apply_event(
            session=s,
            number=case.number,
            status=status,
            actor="staff:1",
            event_id=f"{case.number}-{n}",
            catalog=cat,
            render=lambda ctx: None,
            now=at,
            calendar=cal,
            **extra,
        )
        assert result.applied, result.reason
    return case
