"""The catalog's shape: strict entries, and what a bundle derives from its members."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from knowledge.loader import load_catalog
from knowledge.schema import Bundle, Catalog, DaysUnit, Fee, Item, Material, MaterialForm, days_text
from tests.fixtures import CATALOG_OK


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(CATALOG_OK)


def test_unknown_key_is_rejected_not_ignored() -> None:
    with pytest.raises(ValidationError) as e:
        Item.model_validate({"name": "结婚登记", "code": "X", "department": "县民政局", "materlals": []})
    assert e.value.errors()[0]["type"] == "extra_forbidden"


def test_material_defaults_to_one_original() -> None:
    m = Material(name="居民身份证")
    assert (m.form, m.copies) == (MaterialForm.ORIGINAL, 1)


def test_blank_aliases_are_dropped_and_trimmed() -> None:
    it = Item(name="结婚登记", code="X", department="县民政局", aliases=[" 扯证 ", "", "  "])
    assert it.aliases == ["扯证"]


def test_item_without_fees_is_free() -> None:
    it = Item(name="结婚登记", code="X", department="县民政局")
    assert it.is_free
    assert not it.model_copy(update={"fees": [Fee(name="工本费", amount=9)]}).is_free


def test_bundle_needs_at_least_two_members() -> None:
    with pytest.raises(ValidationError):
        Bundle(name="一件事", lead_department="县民政局", items=["结婚登记"])


def test_days_text_names_the_unit() -> None:
    assert days_text(0) == "即办"
    assert days_text(20) == "20个工作日"
    assert days_text(30, DaysUnit.CALENDAR) == "30日（自然日）"
    assert days_text(3, DaysUnit.MONTH) == "3个月"
    assert days_text(0, DaysUnit.CALENDAR) == "即办"


def test_unknown_unit_is_rejected() -> None:
    with pytest.raises(ValidationError):
        Item.model_validate(
            {"name": "离婚登记", "code": "X", "department": "县民政局", "promised_unit": "日"}
        )


def test_bundle_lists_each_document_once_with_the_items_needing_it(catalog: Catalog) -> None:
    bundle = catalog.bundle("结婚落户一件事")
    assert bundle is not None
    merged = catalog.bundle_materials(bundle)
    names = [m.name for m in merged]
    assert names.count("居民户口簿") == 1  # both members need it
    book = next(m for m in merged if m.name == "居民户口簿")
    assert set(book.needed_by) == {"结婚登记", "户口迁移登记"}
    assert {"居民身份证", "准予迁入证明"} <= set(names)


def test_bundle_deadline_is_the_slowest_member_not_the_sum(catalog: Catalog) -> None:
    bundle = catalog.bundle("结婚落户一件事")
    assert bundle is not None
    # 结婚登记 即办, 户口迁移登记 5 days: parallel review takes 5, not 0 + 5 by accident of order.
    assert str(catalog.bundle_days(bundle)) == "5个工作日"
    longer = bundle.model_copy(update={"items": ["离婚登记", "户口迁移登记"]})
    assert str(catalog.bundle_days(longer)) == "30个工作日"


def test_bundle_deadline_never_mixes_units(catalog: Catalog) -> None:
    # 30 calendar days and 5 working days: which ends later depends on the start date, so the card
    # shows both instead of calling one of them the slowest.
    items = [
        it.model_copy(update={"promised_unit": DaysUnit.CALENDAR}) if it.name == "离婚登记" else it
        for it in catalog.items
    ]
    mixed = Catalog(catalog.center, catalog.departments, catalog.windows, items, catalog.bundles)
    bundle = Bundle(name="离婚迁户", lead_department="县民政局", items=["离婚登记", "户口迁移登记"])
    assert str(mixed.bundle_days(bundle)) == "5个工作日、30日（自然日）（分别计算，以较晚到期者为准）"
    own = bundle.model_copy(update={"promised_days": 2, "promised_unit": DaysUnit.CALENDAR})
    assert str(mixed.bundle_days(own)) == "2日（自然日）"


def test_bundle_fees_combine_member_fees(catalog: Catalog) -> None:
    bundle = Bundle(
        name="办证一件事", lead_department="县公安局", items=["居民身份证申领、换领、补领", "结婚登记"]
    )
    fees = catalog.bundle_fees(bundle)
    assert [(f.item, f.fee.name) for f in fees] == [
        ("居民身份证申领、换领、补领", "工本费"),
        ("居民身份证申领、换领、补领", "邮寄费"),
    ]


def test_lookups(catalog: Catalog) -> None:
    assert catalog.department("gaj") == catalog.department("县公安局")
    assert [i.name for i in catalog.items_of("县民政局")] == ["结婚登记", "离婚登记"]
    assert [b.name for b in catalog.bundles_of("结婚登记")] == ["结婚落户一件事"]
    assert catalog.window("B05") is not None and catalog.window("Z99") is None


def test_bundle_does_not_ask_for_a_document_one_of_its_members_issues() -> None:
    from knowledge.loader import load_catalog

    sample = load_catalog()
    bundle = sample.bundle("开办餐饮店一件事")
    assert bundle is not None
    asked = [m.name for m in sample.bundle_materials(bundle)]
    # The food licence and the fire check need the business licence the first member issues.
    assert not any("营业执照" in name for name in asked)
    shared = {s.name: s.provided_by for s in sample.bundle_shared(bundle)}
    assert shared["营业执照"] == "个体工商户设立登记"
    # Its own documents stay: the applicant still brings an ID card.
    assert "经营者居民身份证" in asked


def test_an_earlier_certificate_is_still_asked_for() -> None:
    from knowledge.loader import load_catalog

    sample = load_catalog()
    bundle = sample.bundle("二手房交易一件事")
    assert bundle is not None
    asked = [m.name for m in sample.bundle_materials(bundle)]
    # The transfer issues a new 不动产权证书; the seller's old one (原…) must still be brought.
    assert any(name.startswith("购房发票或原不动产权证书") for name in asked)
