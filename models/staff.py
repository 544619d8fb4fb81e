"""Center staff known to the bot: who may see and move cases, and for which department."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import BigInteger, Column
from sqlmodel import Field, SQLModel

from models.cases import utc_column


class StaffRole(StrEnum):
    WINDOW = "window"  # a window clerk (窗口工作人员): accepts and hands out, for their department
    DEPARTMENT = "department"  # department reviewer (审批人员)
    ADMIN = "admin"  # management office (中心管理办公室): sees every department, gets overdue alerts

    @property
    def label(self) -> str:
        return {"window": "窗口人员", "department": "部门审批人员", "admin": "中心管理员"}[self.value]


class Staff(SQLModel, table=True):
    __tablename__ = "staff"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True, index=True))
    name: str = Field(max_length=50)
    title: str = Field(default="", max_length=100)  # 职务, shown to applicants next to the name
    department: str | None = Field(default=None, max_length=32)  # department id; None for admins
    role: str = Field(max_length=16)
    active: bool = True
    created_at: dt.datetime = utc_column()
    updated_at: dt.datetime = utc_column()

    @property
    def role_enum(self) -> StaffRole:
        return StaffRole(self.role)
