"""Integration API for the center's existing approval system (aiohttp), served with the bot by
`yichuang run` (when API_TOKEN is set) and alone by `yichuang api`.

    POST /api/v1/cases                   accept a case -> number and the applicant's binding link
    POST /api/v1/cases/{number}/events   a status event; a replayed event_id changes and sends nothing
    GET  /api/v1/cases/{number}          the case, personal data masked, with its history
    GET  /healthz                        database, Redis, delivery lag, lease holder (no token)
    GET  /metrics                        Prometheus text format (no token; bot/metrics.py)
    GET  /api/v1/openapi.json            this contract as OpenAPI 3.1 (no token)

Every answer is JSON. Bad input (malformed JSON, unknown fields, wrong types, a transition the
lifecycle forbids) is a 4xx with `{"error": code, "message": 中文说明}`; nothing a client sends
can produce a 500. Request bodies are validated by the same pydantic models the OpenAPI document
is generated from, so the document cannot drift from the behaviour.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import models_json_schema
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.metrics import Health, OpsContext, add_ops_routes
from bot.notices_render import make_notice_renderer
from knowledge.schema import Catalog
from models.audit import audit
from models.cases import CasePublic, binding_link, binding_start_param
from models.crud import EventOutcome, InputError, apply_event, case_public, create_case, get_case
from models.lifecycle import CaseStatus

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
MAX_BODY = 64 * 1024  # a case or an event is a few hundred bytes; anything bigger is a mistake
ACTOR = "api"

StatusWord = Literal[
    "accepted", "in_review", "correction_required", "completed", "rejected", "picked_up", "withdrawn"
]


# ---------------------------------------------------------------- request and response models


class _Body(BaseModel):
    # Unknown fields are refused: a typo like "phon" must not silently drop the phone.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CaseCreate(_Body):
    item: str = Field(min_length=1, max_length=200, description="事项或“一件事”的规范名称")
    applicant_name: str = Field(min_length=1, max_length=100)
    phone: str = Field(
        min_length=7,
        max_length=20,
        description="受理时登记的电话；后 4 位是申请人查询进度的验证码",
        examples=["13812345678"],
    )
    external_id: str | None = Field(
        default=None, min_length=1, max_length=100, description="审批系统的件号；重复提交返回同一办件"
    )


class EventCreate(_Body):
    event_id: str = Field(min_length=1, max_length=128, description="幂等键：重放不产生任何变化")
    status: StatusWord
    department: str | None = Field(
        default=None, min_length=1, max_length=100, description="部门编号或名称（多部门联办件的审查结果必填）"
    )
    note: str | None = Field(default=None, max_length=500)
    missing_materials: list[Annotated[str, Field(max_length=500)]] | None = Field(
        default=None, max_length=50, description="需补正时一次性列明全部材料"
    )


class CaseCreated(BaseModel):
    number: str
    created: bool = Field(description="false：external_id 已存在，返回原办件并换发新的绑定链接")
    start_param: str = Field(description="t.me/<bot>?start= 的参数")
    binding_link: str | None = Field(description="申请人一键绑定的链接（机器人用户名未知时为 null）")
    case: CasePublic


class EventAnswer(BaseModel):
    outcome: Literal["applied", "duplicate"]
    notices: int = Field(description="本次写入的通知条数（重放为 0）")
    case: CasePublic


class ErrorBody(BaseModel):
    error: str
    message: str
    details: list[dict[str, Any]] | None = None


# ---------------------------------------------------------------- errors as JSON


def error(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = ErrorBody(error=code, message=message, details=details).model_dump(exclude_none=True)
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="yichuang"'
    return web.json_response(body, status=status, headers=headers, dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        text=model.model_dump_json(), status=status, content_type="application/json", charset="utf-8"
    )


_HTTP_ERRORS = {
    400: ("bad_request", "请求格式不正确"),
    404: ("not_found", "没有这个接口"),
    405: ("method_not_allowed", "不支持该请求方法"),
    413: ("too_large", f"请求体过大（上限 {MAX_BODY // 1024} KB）"),
}


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's own errors (unknown path, wrong method, body too large) as JSON; anything
    unexpected is logged and answered 503 so a client retries instead of giving up."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code, message = _HTTP_ERRORS.get(e.status, ("http_error", e.reason))
        # Keep what the status code promises (405 must say which methods are allowed).
        kept = {k: v for k, v in e.headers.items() if k.lower() == "allow"}
        return error(e.status, code, message, headers=kept)
    except Exception:  # noqa: BLE001 - the contract says JSON, never a bare 500
        log.exception("API %s %s failed", request.method, request.path)
        return error(503, "unavailable", "服务暂时不可用，请稍后重试")


def bearer_auth(token: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    expected = token.encode()

    @web.middleware
    async def check(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith(API_PREFIX) and request.path != f"{API_PREFIX}/openapi.json":
            header = request.headers.get("Authorization", "")
            scheme, _, given = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
                return error(401, "unauthorized", "缺少或错误的访问令牌（Authorization: Bearer <API_TOKEN>）")
        return await handler(request)

    return check


M = TypeVar("M", bound=BaseModel)


async def read_body(request: web.Request, model: type[M]) -> M | web.Response:
    raw = await request.read()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return error(400, "bad_json", "请求体不是合法的 JSON")
    if not isinstance(data, dict):
        return error(422, "invalid", "请求体应为 JSON 对象")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        details = [
            {"field": ".".join(str(p) for p in err["loc"]), "problem": err["type"]} for err in e.errors()
        ]
        fields = "、".join(d["field"] or "(body)" for d in details)
        return error(422, "invalid", f"字段不合要求：{fields}", details)


# ---------------------------------------------------------------- handlers


@dataclass
class ApiContext:
    catalog: Catalog
    templates: Any  # jinja2.Environment
    factory: async_sessionmaker[AsyncSession]
    bot_username: str | None = None
    on_notices: Callable[[], None] | None = None  # wakes the delivery worker in this process
    ops: OpsContext | None = None  # what /healthz checks besides the database


CTX = web.AppKey("ctx", ApiContext)


async def create(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    body = await read_body(request, CaseCreate)
    if isinstance(body, web.Response):
        return body
    async with ctx.factory() as session:
        try:
            new = await create_case(
                session=session,
                catalog=ctx.catalog,
                item_name=body.item,
                applicant_name=body.applicant_name,
                phone=body.phone,
                channel="api",
                external_id=body.external_id,
                actor=ACTOR,
            )
        except InputError as e:
            return error(422, "invalid", str(e))
        public = await case_public(session=session, case=new.case)
    number = new.case.number
    answer = CaseCreated(
        number=number,
        created=new.created,
        start_param=binding_start_param(number, new.binding_code),
        binding_link=binding_link(ctx.bot_username, number, new.binding_code) if ctx.bot_username else None,
        case=public,
    )
    return _json(answer, 201 if new.created else 200)


async def add_event(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    body = await read_body(request, EventCreate)
    if isinstance(body, web.Response):
        return body
    async with ctx.factory() as session:
        result = await apply_event(
            session=session,
            number=request.match_info["number"],
            status=body.status,
            actor=ACTOR,
            event_id=body.event_id,
            catalog=ctx.catalog,
            render=make_notice_renderer(ctx.templates),
            department=body.department,
            note=body.note,
            missing_materials=body.missing_materials,
        )
        if result.outcome == EventOutcome.NOT_FOUND or result.case is None:
            return error(404, "not_found", "没有这个办件编号")
        if result.outcome == EventOutcome.REFUSED:
            return error(409, "refused", result.reason or "该状态变更不被允许", [{"status": body.status}])
        public = await case_public(session=session, case=result.case)
    if result.notices and ctx.on_notices is not None:
        ctx.on_notices()
    outcome: Literal["applied", "duplicate"] = "applied" if result.applied else "duplicate"
    return _json(EventAnswer(outcome=outcome, notices=result.notices, case=public))


async def read(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    number = request.match_info["number"]
    async with ctx.factory() as session:
        case = await get_case(session=session, number=number)
        if case is None:
            return error(404, "not_found", "没有这个办件编号")
        public = await case_public(session=session, case=case)
        audit(session=session, actor=ACTOR, action="case.read", outcome="ok", target=case.number)
        await session.commit()
    return _json(public)


async def openapi(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[OPENAPI], dumps=_dumps)


OPENAPI = web.AppKey("openapi", dict)


def build_app(ctx: ApiContext, *, token: str) -> web.Application:
    if not token:
        raise ValueError("API_TOKEN must not be empty")
    app = web.Application(middlewares=[json_errors, bearer_auth(token)], client_max_size=MAX_BODY)
    app[CTX] = ctx
    app[OPENAPI] = openapi_document(ctx.catalog)
    app.router.add_post(f"{API_PREFIX}/cases", create)
    app.router.add_post(f"{API_PREFIX}/cases/{{number}}/events", add_event)
    app.router.add_get(f"{API_PREFIX}/cases/{{number}}", read)
    app.router.add_get(f"{API_PREFIX}/openapi.json", openapi)
    add_ops_routes(app, ctx.ops or OpsContext(ctx.factory))
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start listening; the caller keeps the runner and calls `await runner.cleanup()` to stop."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("integration API on http://%s:%s%s", host, port, API_PREFIX)
    return runner


# ---------------------------------------------------------------- the OpenAPI document


def openapi_document(catalog: Catalog | None = None) -> dict[str, Any]:
    """The contract; with a catalog, `item` lists its canonical item and bundle names."""
    models: list[type[BaseModel]] = [CaseCreate, EventCreate, CaseCreated, EventAnswer, ErrorBody, Health]
    _, top = models_json_schema(
        [(m, "validation" if m in (CaseCreate, EventCreate) else "serialization") for m in models],
        ref_template="#/components/schemas/{model}",
    )
    schemas = top.get("$defs", {})
    if catalog is not None:
        names = [i.name for i in catalog.items] + [b.name for b in catalog.bundles]
        schemas["CaseCreate"]["properties"]["item"]["enum"] = names

    def ref(name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{name}"}

    def answer(description: str, schema: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": ref(schema)}}}

    err = {
        "400": answer("请求体不是合法的 JSON", "ErrorBody"),
        "401": answer("缺少或错误的访问令牌", "ErrorBody"),
        "404": answer("没有这个办件编号", "ErrorBody"),
        "405": answer("不支持该请求方法", "ErrorBody"),
        "413": answer("请求体过大", "ErrorBody"),
        "422": answer("字段不合要求", "ErrorBody"),
        "503": answer("服务暂时不可用", "ErrorBody"),
    }
    number = {
        "name": "number",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "maxLength": 64},
        "description": "办件编号，如 YC260315K7Q2MXAB3（大小写、短横线均可）",
    }
    statuses = " | ".join(s.value for s in CaseStatus)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "一窗 办件集成接口",
            "version": "1.0.0",
            "description": "中心审批系统推送办件与状态变化；申请人通过机器人查询和接收通知。",
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            f"{API_PREFIX}/cases": {
                "post": {
                    "operationId": "createCase",
                    "summary": "受理一个办件",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": ref("CaseCreate")}},
                    },
                    "responses": {
                        "201": answer("已受理", "CaseCreated"),
                        "200": answer("external_id 已存在：原办件，新的绑定链接", "CaseCreated"),
                        **{k: v for k, v in err.items() if k != "404"},
                    },
                }
            },
            f"{API_PREFIX}/cases/{{number}}/events": {
                "post": {
                    "operationId": "addEvent",
                    "summary": f"办件状态变化（{statuses}）",
                    "parameters": [number],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": ref("EventCreate")}},
                    },
                    "responses": {
                        "200": answer("已应用；或 event_id 重放（outcome=duplicate，无变化）", "EventAnswer"),
                        "409": answer("办件流程不允许该变化（理由见 message）", "ErrorBody"),
                        **err,
                    },
                }
            },
            f"{API_PREFIX}/cases/{{number}}": {
                "get": {
                    "operationId": "getCase",
                    "summary": "查询办件（个人信息已脱敏）",
                    "parameters": [number],
                    "responses": {
                        "200": {
                            "description": "办件",
                            "content": {"application/json": {"schema": ref("CasePublic")}},
                        },
                        **{k: v for k, v in err.items() if k in ("401", "404", "405", "503")},
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "健康检查：数据库、Redis、通知发送积压、发送进程租约",
                    "security": [],
                    "responses": {
                        "200": answer("正常", "Health"),
                        "503": answer("有问题（message 说明，checks 逐项列出）", "Health"),
                    },
                }
            },
            f"{API_PREFIX}/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "本文档",
                    "security": [],
                    "responses": {
                        "200": {"description": "OpenAPI 3.1 文档", "content": {"application/json": {}}}
                    },
                }
            },
        },
    }
