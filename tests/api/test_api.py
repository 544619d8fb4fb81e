"""The integration API as the approval system uses it: accept, move, read; errors are JSON 4xx."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from knowledge.schema import Catalog
from models.cases import Case, parse_start_param
from models.crud import subscribe
from models.notices import Notice
from tests.api.conftest import AUTH, BUNDLE, FOOD

Client = TestClient  # type: ignore[type-arg]
DB = tuple[AsyncEngine, async_sessionmaker[AsyncSession]]


async def create(api: Client, **overrides: Any) -> dict[str, Any]:
    body = {"item": FOOD, "applicant_name": "王小明", "phone": "13812345678", **overrides}
    r = await api.post("/api/v1/cases", json=body, headers=AUTH)
    assert r.status in (200, 201), await r.text()
    return dict(await r.json())


async def event(api: Client, number: str, **body: Any) -> tuple[int, dict[str, Any]]:
    r = await api.post(f"/api/v1/cases/{number}/events", json=body, headers=AUTH)
    assert r.content_type == "application/json"
    return r.status, dict(await r.json())


async def notices(db: DB) -> list[Notice]:
    async with db[1]() as s:
        return list((await s.exec(select(Notice).order_by(col(Notice.id)))).all())


async def subscribe_chat(db: DB, number: str, chat_id: int) -> None:
    async with db[1]() as s:
        case = (await s.exec(select(Case).where(col(Case.number) == number))).one()
        await subscribe(session=s, case=case, chat_id=chat_id)


async def test_create_returns_number_and_one_tap_binding_link(api: Client) -> None:
    got = await create(api)
    number = got["number"]
    assert got["created"] is True
    assert got["binding_link"].startswith("https://t.me/TestNameBot?start=c_" + number)
    assert parse_start_param(got["start_param"]) is not None
    case = got["case"]
    assert case["status"] == "accepted" and case["status_label"] == "已受理"
    # Personal data never leaves masked.
    assert case["phone_masked"] == "138****5678" and case["applicant_masked"] == "王*明"
    assert "13812345678" not in str(got) and "王小明" not in str(got)


async def test_same_external_id_returns_the_same_case(api: Client) -> None:
    first = await create(api, external_id="SP-2026-001")
    r = await api.post(
        "/api/v1/cases",
        json={"item": FOOD, "applicant_name": "王小明", "phone": "13812345678", "external_id": "SP-2026-001"},
        headers=AUTH,
    )
    assert r.status == 200
    again = await r.json()
    assert again["number"] == first["number"] and again["created"] is False


async def test_get_case_with_history_and_steps(api: Client) -> None:
    number = (await create(api, item=BUNDLE))["number"]
    status, _ = await event(api, number, event_id="e1", status="in_review")
    assert status == 200
    r = await api.get(f"/api/v1/cases/{number.lower()}", headers=AUTH)
    assert r.status == 200
    case = await r.json()
    assert case["status"] == "in_review"
    # One step per department, lead first, every department started by one in_review.
    assert [(s["department_name"], s["status"]) for s in case["steps"]] == [
        ("县市场监督管理局", "in_review"),
        ("县消防救援大队", "in_review"),
    ]
    assert [h["status"] for h in case["history"]] == ["accepted", "in_review"]


async def test_event_moves_case_and_queues_one_notice_per_subscribed_chat(api: Client, db: DB) -> None:
    number = (await create(api))["number"]
    await subscribe_chat(db, number, 9001)
    status, body = await event(api, number, event_id="e1", status="in_review")
    assert status == 200 and body["outcome"] == "applied" and body["notices"] == 1
    status, body = await event(
        api, number, event_id="e2", status="correction_required", missing_materials=["营业执照", "健康证明"]
    )
    assert body["case"]["status"] == "correction_required"
    rows = await notices(db)
    assert [n.kind for n in rows] == ["in_review", "correction_required"]
    assert "营业执照" in rows[1].text and "健康证明" in rows[1].text
    assert rows[1].reply_markup is not None and "我已知晓" in str(rows[1].reply_markup)


async def test_replayed_event_id_changes_nothing_and_sends_nothing(api: Client, db: DB) -> None:
    number = (await create(api))["number"]
    await subscribe_chat(db, number, 9002)
    await event(api, number, event_id="x-1", status="in_review")
    await event(api, number, event_id="x-2", status="completed")
    before = await notices(db)
    # The approval system retries the in_review it already sent: no change, no notice.
    status, body = await event(api, number, event_id="x-1", status="in_review")
    assert status == 200 and body["outcome"] == "duplicate" and body["notices"] == 0
    assert body["case"]["status"] == "completed"
    assert len(await notices(db)) == len(before)


async def test_completion_notice_tells_where_when_and_what_to_bring(
    api: Client, db: DB, bot_catalog: Catalog
) -> None:
    number = (await create(api))["number"]
    await subscribe_chat(db, number, 9003)
    await event(api, number, event_id="c-1", status="in_review")
    await event(api, number, event_id="c-2", status="completed")
    done = (await notices(db))[-1]
    assert done.kind == "completed"
    assert "办结通知" in done.text
    assert "A01" in done.text and "一楼 A 区" in done.text  # the item's window
    assert "身份证件" in done.text  # what to bring
    assert bot_catalog.center.hours[0] in done.text


async def test_bad_transition_is_409_with_reason(api: Client) -> None:
    number = (await create(api))["number"]
    status, body = await event(api, number, event_id="b-1", status="completed")
    assert status == 409 and body["error"] == "refused"
    assert "开始审查" in body["message"]
    status, body = await event(api, number, event_id="b-2", status="rejected")
    assert status == 409


async def test_rejection_needs_a_reason_and_correction_needs_materials(api: Client) -> None:
    number = (await create(api))["number"]
    await event(api, number, event_id="r-0", status="in_review")
    status, body = await event(api, number, event_id="r-1", status="rejected")
    assert status == 409 and "理由" in body["message"]
    status, body = await event(api, number, event_id="r-2", status="correction_required")
    assert status == 409 and "材料" in body["message"]


async def test_unknown_case_is_404(api: Client) -> None:
    r = await api.get("/api/v1/cases/YC260101ABCDEFGH0", headers=AUTH)
    assert r.status == 404 and (await r.json())["error"] == "not_found"
    status, _ = await event(api, "nonsense", event_id="n-1", status="in_review")
    assert status == 404


async def test_token_required(api: Client) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        r = await api.post("/api/v1/cases", json={"item": FOOD}, headers=headers)
        assert r.status == 401
        assert (await r.json())["error"] == "unauthorized"
    r = await api.get("/healthz")
    assert r.status == 200 and (await r.json())["status"] == "ok"


async def test_bad_bodies_are_4xx_json_never_500(api: Client) -> None:
    bad = [
        b"{not json",
        b"[1, 2]",
        b'"text"',
        b"",
        b'{"item": "' + FOOD.encode() + b'", "applicant_name": "A", "phone": "13812345678", "phon": 1}',
        b'{"item": 5, "applicant_name": "A", "phone": "13812345678"}',
        b'{"item": "no such item", "applicant_name": "A", "phone": "13812345678"}',
        b'{"item": "' + FOOD.encode() + b'", "applicant_name": "A", "phone": "12345"}',
        b"\xff\xfe",
    ]
    for raw in bad:
        r = await api.post("/api/v1/cases", data=raw, headers={**AUTH, "Content-Type": "application/json"})
        assert 400 <= r.status < 500, (raw, r.status)
        body = await r.json()
        assert body["error"] and body["message"]
    number = (await create(api))["number"]
    for body in (
        {"event_id": "q", "status": "done"},
        {"status": "in_review"},
        {"event_id": "q", "status": "in_review", "x": 1},
    ):
        r = await api.post(f"/api/v1/cases/{number}/events", json=body, headers=AUTH)
        assert r.status == 422
    r = await api.post("/api/v1/cases", data=b"x" * 70_000, headers=AUTH)
    assert r.status == 413 and (await r.json())["error"] == "too_large"
    r = await api.delete(f"/api/v1/cases/{number}", headers=AUTH)
    assert r.status == 405 and r.content_type == "application/json"


async def test_openapi_document_describes_every_route(api: Client) -> None:
    r = await api.get("/api/v1/openapi.json")
    assert r.status == 200
    doc = await r.json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) >= {
        "/api/v1/cases",
        "/api/v1/cases/{number}/events",
        "/api/v1/cases/{number}",
        "/healthz",
    }
    enum = doc["components"]["schemas"]["EventCreate"]["properties"]["status"]["enum"]
    assert "correction_required" in enum and "withdrawn" in enum
