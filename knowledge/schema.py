"""The catalog's shape: the six publicities (六公开) of every item, and the bundles built from them.

Everything here is plain data validated by pydantic; what is *derived* (a bundle's merged
materials, combined fees, overall deadline) lives on `Catalog` so it is computed in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    # Unknown keys are typos in hand-edited YAML; reject them so `catalog check` can say where.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class Phone(_Strict):
    label: str = Field(min_length=1)
    number: str = Field(min_length=3)


class Center(_Strict):
    name: str = Field(min_length=1)
    address: str = Field(min_length=1)
    hours: list[str] = Field(min_length=1)
    phones: list[Phone] = Field(min_length=1)
    # Shown wherever the catalog is shown: the shipped data is illustrative, not a real county's.
    sample_notice: str | None = None


class Department(_Strict):
    # Short ASCII id: stable across renames and small enough for Telegram callback data (64 bytes).
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{1,23}$")
    name: str = Field(min_length=2)
    phone: str | None = None


class Window(_Strict):
    number: str = Field(min_length=1, max_length=16)
    department: str = Field(min_length=2)  # department name
    location: str | None = None
    chief_name: str = Field(min_length=1)  # 首席代表
    chief_title: str = Field(min_length=1)
    phone: str | None = None


class ItemType(StrEnum):
    LICENSE = "许可"
    CONFIRMATION = "确认"
    BENEFIT = "给付"
    OTHER = "其他"


class MaterialForm(StrEnum):
    ORIGINAL = "原件"
    COPY = "复印件"
    ORIGINAL_AND_COPY = "原件和复印件"
    ELECTRONIC = "电子"


class DaysUnit(StrEnum):
    """How a time limit is counted.

    Most limits are working days (行政许可法 第八十二条 counts its own limits that way, and
    promises are set in them). Other laws give calendar days or months: the 30-day 离婚冷静期
    (民法典 第一千零七十七条) or three months for a private school (民办教育促进法). Stating them as
    working days would tell a citizen a wrong date, so each limit carries its own unit.
    """

    WORKING = "working"  # 工作日
    CALENDAR = "calendar"  # 自然日
    MONTH = "month"  # 月

    @property
    def label(self) -> str:
        return _UNIT_LABELS[self]


_UNIT_LABELS = {DaysUnit.WORKING: "工作日", DaysUnit.CALENDAR: "自然日", DaysUnit.MONTH: "月"}


@dataclass(frozen=True)
class TimeLimit:
    days: int  # a count of `unit`; 0 means 即办 (handled on the spot)
    unit: DaysUnit = DaysUnit.WORKING

    def __str__(self) -> str:
        return days_text(self.days, self.unit)

    def longer_than(self, other: TimeLimit) -> bool:
        """Exact in one unit. Across units there is no exact answer without a start date, so they
        are compared by an estimate (5 working days ≈ a week, a month ≈ 30 days); that is only
        used to flag catalog data, while dates are always computed exactly by models.workdays."""
        if self.unit == other.unit:
            return self.days > other.days
        return self._rough_calendar_days > other._rough_calendar_days

    @property
    def _rough_calendar_days(self) -> float:
        return self.days * {DaysUnit.WORKING: 7 / 5, DaysUnit.CALENDAR: 1, DaysUnit.MONTH: 30}[self.unit]


@dataclass(frozen=True)
class BundleLimit:
    """A bundle's overall limit. Members are reviewed in parallel, so it is the slowest member; when
    members count in different units there is no exact "slowest" without a start date, so the
    slowest of each unit is kept and a case falls due at the later of their dates."""

    parts: tuple[TimeLimit, ...]

    def __str__(self) -> str:
        if len(self.parts) == 1:
            return str(self.parts[0])
        return "、".join(str(p) for p in self.parts) + "（分别计算，以较晚到期者为准）"


class Material(_Strict):
    name: str = Field(min_length=1)
    form: MaterialForm = MaterialForm.ORIGINAL
    copies: int = Field(default=1, ge=0)
    notes: str | None = None
    source: str | None = None  # where to get it; the self-check repeats this for missing items
    sample: str | None = None  # file under the catalog's forms/ folder


class Fee(_Strict):
    name: str = Field(min_length=1)
    amount: float | None = Field(default=None, ge=0)  # yuan; None when a rule decides it
    rule: str | None = None
    basis: str | None = None


class Item(_Strict):
    name: str = Field(min_length=2)
    code: str = Field(min_length=1)
    department: str = Field(min_length=2)  # department name
    window: str | None = None  # window number
    type: ItemType = ItemType.LICENSE
    # 办理结果: what the applicant receives. Inside a bundle a member's output is shared with the
    # other members, so nobody is asked to bring a document the bundle itself produces.
    outputs: list[str] = Field(default_factory=list)
    basis: list[str] = Field(default_factory=list)
    conditions: list[str] = Field(default_factory=list)
    materials: list[Material] = Field(default_factory=list)
    procedure: list[str] = Field(default_factory=list)
    # Counted in the unit beside each (working days unless the law says otherwise); 0 means 即办.
    statutory_days: int = 0
    statutory_unit: DaysUnit = DaysUnit.WORKING
    promised_days: int = 0
    promised_unit: DaysUnit = DaysUnit.WORKING
    fees: list[Fee] = Field(default_factory=list)  # empty: 免费
    consult_phone: str | None = None
    supervise_phone: str | None = None
    aliases: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    related: list[str] = Field(default_factory=list)
    max_visits: int | None = Field(default=None, ge=0)  # 最多跑几次
    online: str | None = None  # how to apply online, if at all
    notes: str | None = None

    @field_validator("aliases", "keywords")
    @classmethod
    def _no_blank(cls, v: list[str]) -> list[str]:
        return [s.strip() for s in v if s and s.strip()]

    @property
    def is_free(self) -> bool:
        return not self.fees

    @property
    def statutory(self) -> TimeLimit:
        return TimeLimit(self.statutory_days, self.statutory_unit)

    @property
    def promised(self) -> TimeLimit:
        return TimeLimit(self.promised_days, self.promised_unit)


class Bundle(_Strict):
    name: str = Field(min_length=2)
    lead_department: str = Field(min_length=2)
    items: list[str] = Field(min_length=2)
    window: str | None = None
    description: str | None = None
    # Overall promised limit; None: the longest member (members are reviewed in parallel).
    promised_days: int | None = None
    promised_unit: DaysUnit = DaysUnit.WORKING
    aliases: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)

    @field_validator("aliases", "keywords")
    @classmethod
    def _no_blank(cls, v: list[str]) -> list[str]:
        return [s.strip() for s in v if s and s.strip()]


@dataclass(frozen=True)
class MergedMaterial:
    """One document of a bundle's combined list, with every member item that needs it."""

    name: str
    form: MaterialForm
    copies: int
    notes: str | None
    source: str | None
    needed_by: tuple[str, ...]


@dataclass(frozen=True)
class SharedMaterial:
    """A document one bundle member needs and another member issues (共享互认, 免于提交)."""

    name: str
    provided_by: str
    needed_by: tuple[str, ...]


@dataclass(frozen=True)
class BundleFee:
    item: str
    fee: Fee


@dataclass
class Catalog:
    center: Center
    departments: list[Department]
    windows: list[Window]
    items: list[Item]
    bundles: list[Bundle]
    root: str | None = None  # folder it was loaded from (forms are resolved against it)
    _items_by_name: dict[str, Item] = field(default_factory=dict, repr=False)
    _bundles_by_name: dict[str, Bundle] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._items_by_name = {i.name: i for i in self.items}
        self._bundles_by_name = {b.name: b for b in self.bundles}

    def item(self, name: str) -> Item | None:
        return self._items_by_name.get(name)

    def bundle(self, name: str) -> Bundle | None:
        return self._bundles_by_name.get(name)

    def department(self, key: str) -> Department | None:
        return next((d for d in self.departments if key in (d.name, d.id)), None)

    def window(self, number: str | None) -> Window | None:
        return next((w for w in self.windows if w.number == number), None) if number else None

    def items_of(self, department_name: str) -> list[Item]:
        return [i for i in self.items if i.department == department_name]

    def bundles_of(self, item_name: str) -> list[Bundle]:
        return [b for b in self.bundles if item_name in b.items]

    def members(self, bundle: Bundle) -> list[Item]:
        return [i for n in bundle.items if (i := self.item(n)) is not None]

    def bundle_shared(self, bundle: Bundle) -> list[SharedMaterial]:
        """Materials a member needs that another member produces: shared inside, not brought."""
        shared: dict[str, SharedMaterial] = {}
        for it in self.members(bundle):
            for m in it.materials:
                producer = self._producer_in(bundle, it, m.name)
                if producer is not None:
                    key = _material_key(m.name)
                    prev = shared.get(key)
                    needed = (*prev.needed_by, it.name) if prev else (it.name,)
                    shared[key] = SharedMaterial(m.name, producer, needed)
        return list(shared.values())

    def _producer_in(self, bundle: Bundle, consumer: Item, material: str) -> str | None:
        for other in self.members(bundle):
            if other.name != consumer.name and any(_names_new(o, material) for o in _output_stems(other)):
                return other.name
        return None

    def bundle_materials(self, bundle: Bundle) -> list[MergedMaterial]:
        """Each document once, in first-seen order, marked with the items that need it.

        Documents produced by another member (the licence a later permit asks for) are left out:
        see `bundle_shared`.
        """
        merged: dict[str, tuple[Material, list[str]]] = {}
        for it in self.members(bundle):
            for m in it.materials:
                if self._producer_in(bundle, it, m.name) is not None:
                    continue
                key = _material_key(m.name)
                if key in merged:
                    first, needed = merged[key]
                    if it.name not in needed:
                        needed.append(it.name)
                    if m.copies > first.copies:
                        merged[key] = (m, needed)
                else:
                    merged[key] = (m, [it.name])
        return [
            MergedMaterial(m.name, m.form, m.copies, m.notes, m.source, tuple(needed))
            for m, needed in merged.values()
        ]

    def bundle_fees(self, bundle: Bundle) -> list[BundleFee]:
        return [BundleFee(it.name, f) for it in self.members(bundle) for f in it.fees]

    def bundle_days(self, bundle: Bundle) -> BundleLimit:
        """Parallel review: the bundle takes as long as its slowest member, not the sum."""
        if bundle.promised_days is not None:
            return BundleLimit((TimeLimit(bundle.promised_days, bundle.promised_unit),))
        slowest: dict[DaysUnit, TimeLimit] = {}
        for it in self.members(bundle):
            if it.promised_days > 0:
                prev = slowest.get(it.promised_unit)
                if prev is None or it.promised_days > prev.days:
                    slowest[it.promised_unit] = it.promised
        return BundleLimit(tuple(slowest[u] for u in DaysUnit if u in slowest) or (TimeLimit(0),))


def _material_key(name: str) -> str:
    # "申请人身份证" and "申请人身份证 " or full-width brackets must merge into one line.
    return "".join(name.split()).replace("（", "(").replace("）", ")")


def _output_stems(item: Item) -> list[str]:
    # "户口簿（新生儿落户）" is matched as "户口簿": the bracket only explains the output.
    return [o.split("（")[0].strip() for o in item.outputs]


def _names_new(output: str, material: str) -> bool:
    """Does the material name ask for this output, and not for an earlier one ("原不动产权证书")?"""
    at = material.find(output) if output else -1
    return at >= 0 and material[max(0, at - 1) : at] != "原"


def days_text(days: int, unit: DaysUnit = DaysUnit.WORKING) -> str:
    if days == 0:
        return "即办"
    if unit == DaysUnit.CALENDAR:
        return f"{days}日（自然日）"
    return f"{days}个月" if unit == DaysUnit.MONTH else f"{days}个工作日"
