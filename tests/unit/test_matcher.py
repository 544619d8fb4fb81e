"""Matcher behaviour a citizen notices: the right entry first, bundles for "everything for X",
and an honest "not sure" for questions the center does not handle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from knowledge.matcher import Matcher
from knowledge.schema import Bundle, Catalog, Center, Department, Item, Material, Phone, Window
from knowledge.textnorm import LIGHT, Normalizer, Speller, Vocabulary

# shared/ sits beside the checkout (as in CI: a copy of shared/ next to the clone).
DEV_FILE = Path(__file__).resolve().parents[3] / "shared" / "eval" / "questions.dev.jsonl"
HELDOUT_FILE = Path(__file__).with_name("heldout_questions.jsonl")
BENCH = Path(__file__).resolve().parents[2] / "bench"


def _item(name: str, dept: str, aliases: list[str], keywords: list[str], materials: list[str]) -> Item:
    return Item(
        name=name,
        code=f"T-{abs(hash(name)) % 10000}",
        department=dept,
        aliases=aliases,
        keywords=keywords,
        materials=[Material(name=m) for m in materials],
    )


SCJG, GA, MZ, XF, ZR, TAX = (
    "县市场监督管理局",
    "县公安局",
    "县民政局",
    "县消防救援大队",
    "县不动产登记中心",
    "县税务局",
)


def fixture_catalog() -> Catalog:
    items = [
        _item(
            "个体工商户设立登记",
            SCJG,
            ["个体户营业执照", "办营业执照", "注册个体户"],
            ["个体户", "营业执照", "开店", "做生意"],
            ["经营者身份证", "经营场所使用证明"],
        ),
        _item(
            "个体工商户注销登记",
            SCJG,
            ["个体户注销", "注销营业执照"],
            ["注销", "不干了"],
            ["注销登记申请书", "营业执照正副本"],
        ),
        _item(
            "食品经营许可证核发",
            SCJG,
            ["食品许可证", "食品经营许可证"],
            ["饭馆", "餐饮", "小吃", "面包店", "超市"],
            ["食品经营许可申请书", "营业执照", "食品安全管理制度"],
        ),
        _item(
            "公众聚集场所投入使用、营业前消防安全检查",
            XF,
            ["消防检查", "消防验收", "消防安全检查"],
            ["消防", "饭店", "商场"],
            ["消防安全检查申报表", "营业执照"],
        ),
        _item(
            "居民身份证申领、换领、补领",
            GA,
            ["身份证", "办身份证", "补身份证", "身份证丢了"],
            ["身份证过期", "身份证到期"],
            ["户口簿", "近期照片"],
        ),
        _item(
            "出生登记",
            GA,
            ["新生儿上户口", "报户口", "落户口"],
            ["出生证明", "出生"],
            ["出生医学证明", "户口簿"],
        ),
        _item(
            "机动车驾驶证换证、补证",
            GA,
            ["驾驶证补证", "驾驶证换证", "驾驶证到期"],
            ["驾驶证"],
            ["身份证", "体检证明"],
        ),
        _item("结婚登记", MZ, ["领结婚证", "扯证", "领证"], ["结婚"], ["户口簿", "身份证", "合影照片"]),
        _item("离婚登记", MZ, ["办离婚", "协议离婚"], ["离婚"], ["离婚协议书", "结婚证"]),
        _item(
            "不动产转移登记", ZR, ["房屋过户", "过户", "房产过户"], ["买房", "卖房", "继承"], ["不动产权证书"]
        ),
        _item("契税申报", TAX, ["交契税", "缴纳契税"], ["契税", "买房交税"], ["购房合同", "身份证"]),
        _item("社会保障卡申领", "县人社局", ["社保卡", "办社保卡"], ["社会保障卡"], ["身份证", "照片"]),
        # Near-duplicates as an imported county spreadsheet has them: no aliases, no keywords.
        _item("食品经营许可证延续", SCJG, [], [], ["食品经营许可证正本", "延续申请书"]),
        _item("食品经营许可证注销", SCJG, [], [], ["注销申请书"]),
        _item("离婚登记记录证明开具", MZ, [], [], ["身份证"]),
        _item("排污许可证换证", "县生态环境分局", [], [], ["原证件", "身份证"]),
    ]
    bundles = [
        Bundle(
            name="开办餐饮店一件事",
            lead_department=SCJG,
            items=["个体工商户设立登记", "食品经营许可证核发", "公众聚集场所投入使用、营业前消防安全检查"],
            aliases=["开饭店", "开餐馆"],
            keywords=["餐饮", "开店"],
        ),
        Bundle(
            name="二手房交易一件事",
            lead_department=ZR,
            items=["不动产转移登记", "契税申报"],
            aliases=["二手房买卖", "二手房过户"],
            keywords=["二手房"],
        ),
    ]
    depts = [
        Department(id=f"d{n}", name=d)
        for n, d in enumerate(sorted({i.department for i in items} | {b.lead_department for b in bundles}))
    ]
    center = Center(
        name="测试中心",
        address="测试路1号",
        hours=["周一至周五"],
        phones=[Phone(label="咨询", number="12345")],
    )
    return Catalog(
        center,
        depts,
        [Window(number="A01", department=SCJG, chief_name="张三", chief_title="科长")],
        items,
        bundles,
    )


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(fixture_catalog())


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("我想办个体户营业执照", "个体工商户设立登记"),
        ("个体户不干了，要注销", "个体工商户注销登记"),
        ("开面包店要食品许可证吗", "食品经营许可证核发"),
        ("身份证丢了咋补办", "居民身份证申领、换领、补领"),
        ("我的身份证过期了怎么办", "居民身份证申领、换领、补领"),
        ("小孩刚出生怎么上户口", "出生登记"),
        ("驾照到期了去哪换", "机动车驾驶证换证、补证"),
        ("扯证要带啥", "结婚登记"),
        ("离婚需要什么手续", "离婚登记"),
        ("买房子交契税多少钱", "契税申报"),
        ("社保卡在哪办", "社会保障卡申领"),
    ],
)
def test_everyday_wording_finds_the_item(matcher: Matcher, question: str, expected: str) -> None:
    result = matcher.search(question)
    assert result.best is not None and result.best.name == expected, result.matches
    assert result.confident


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("食品许可证", "食品经营许可证核发"),
        ("食品经营许可证要注销", "食品经营许可证注销"),
        ("离婚手续", "离婚登记"),
        ("身份证换证", "居民身份证申领、换领、补领"),
    ],
)
def test_variants_win_only_when_asked_for(matcher: Matcher, question: str, expected: str) -> None:
    best = matcher.search(question).best
    assert best is not None and best.name == expected


def test_typo_still_finds_the_item(matcher: Matcher) -> None:
    result = matcher.search("办营业只照")  # 执 mistyped as 只
    assert result.best is not None and result.best.name == "个体工商户设立登记"


@pytest.mark.parametrize("question", ["开饭店要办哪些证", "开个餐馆需要办什么证", "开饭店一次办好所有手续"])
def test_everything_for_one_goal_is_the_bundle(matcher: Matcher, question: str) -> None:
    result = matcher.search(question)
    assert result.best is not None and (result.best.name, result.best.kind) == ("开办餐饮店一件事", "bundle")


@pytest.mark.parametrize(
    ("question", "expected"),
    [("饭店消防检查怎么办", "公众聚集场所投入使用、营业前消防安全检查"), ("买房子交契税", "契税申报")],
)
def test_one_permit_of_a_bundle_is_the_item(matcher: Matcher, question: str, expected: str) -> None:
    best = matcher.search(question).best
    assert best is not None and best.name == expected


@pytest.mark.parametrize(
    "question",
    [
        "今天天气怎么样",
        "讲个笑话",
        "附近有什么好吃的饭馆",
        "火锅哪家好吃",
        "股票行情",
        "你好",
        "",
        "？？？",
        "🙂",
    ],
)
def test_out_of_scope_is_not_confident(matcher: Matcher, question: str) -> None:
    assert not matcher.search(question).confident


def test_not_confident_still_offers_ranked_candidates(matcher: Matcher) -> None:
    result = matcher.search("附近有什么好吃的饭馆")
    assert not result.confident
    assert result.matches, "the bot shows '您要办的是：' buttons from these"
    scores = [m.score for m in result.matches]
    assert scores == sorted(scores, reverse=True)


def test_limit_and_odd_input(matcher: Matcher) -> None:
    assert len(matcher.search("营业执照", limit=2).matches) == 2
    assert matcher.search("营业执照", limit=0).matches == []
    long_question = "我想问一下" * 500 + "身份证"
    assert matcher.search(long_question) is not None  # truncated, no crash


def test_a_repeated_question_gets_the_same_answer_and_the_memo_stays_bounded() -> None:
    m = Matcher(fixture_catalog(), memo=3)
    first = m.search("开饭馆要办什么证")
    assert m.search("开饭馆要办什么证") == first == m.explain("开饭馆要办什么证").result
    for q in ("身份证丢了", "结婚登记", "营业执照", "低保"):
        m.search(q)
    assert len(m._memo) == 3  # the oldest question went first
    assert m.search("开饭馆要办什么证") == first


def test_empty_catalog_answers_nothing() -> None:
    c = fixture_catalog()
    empty = Catalog(c.center, c.departments, c.windows, [], [])
    result = Matcher(empty).search("身份证")
    assert result.matches == [] and not result.confident


def test_vocabulary_rewrites_everyday_words_and_weighs_fillers() -> None:
    norm = Normalizer(
        Vocabulary.from_mapping(
            {
                "synonyms": {"住房公积金": ["公积金"]},
                "fillers": ["怎么办"],
                "light": [["的"]],
                "bundle_cues": ["哪些证"],
            }
        )
    )
    assert norm.normalize("公积金") == "住房公积金"
    assert norm.normalize("住房公积金") == "住房公积金"  # canonical word is not rewritten again
    a = norm.analyze("开店的要办哪些证，怎么办？")
    assert a.bundle_cue
    assert a.text == "开店的要办哪些证怎么办"
    assert a.weights[a.text.index("的")] == LIGHT
    assert a.weights[a.text.index("怎")] == 0.0


def test_measure_words_after_a_verb_are_dropped() -> None:
    norm = Normalizer(Vocabulary.from_mapping({"verb_measure": {"verbs": ["开"], "words": ["个", "一家"]}}))
    assert norm.normalize("开个药店") == norm.normalize("开一家药店") == "开药店"
    assert norm.normalize("开个体户") == "开个体户"  # 个体户 is a word, not 个 + 体户


def test_light_characters_inside_catalog_words_stay_content() -> None:
    norm = Normalizer(Vocabulary.from_mapping({"light": [["份", "的"]]}))
    a = norm.analyze("我的身份证", known={"身份", "份证"})
    assert a.weights[a.text.index("份")] == 1.0
    assert a.weights[a.text.index("的")] == LIGHT


def _eval_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _rates(m: Matcher, rows: list[dict[str, Any]]) -> tuple[float, float, float]:
    top1 = top3 = inscope = oos = rejected = 0
    for row in rows:
        expect = set(row["expect"])
        r = m.search(str(row["q"]))
        names = [x.name for x in r.matches]
        if expect:
            inscope += 1
            top1 += bool(names[:1] and names[0] in expect)
            top3 += bool(expect & set(names[:3]))
        else:
            oos += 1
            rejected += not r.confident
    return top1 / max(inscope, 1), top3 / max(inscope, 1), rejected / max(oos, 1)


@pytest.fixture(scope="module")
def sample_matcher() -> Matcher:
    from knowledge.loader import CatalogError, load_catalog

    try:
        return Matcher(load_catalog())
    except CatalogError as e:
        pytest.skip(f"sample catalog not loadable yet: {e.report()[:200]}")


@pytest.mark.skipif(not DEV_FILE.exists(), reason="shared dev questions not present")
def test_dev_questions_meet_the_bars(sample_matcher: Matcher) -> None:
    top1, top3, oos = _rates(sample_matcher, _eval_rows(DEV_FILE))
    assert top1 >= 0.90 and top3 >= 0.97 and oos >= 0.90, (top1, top3, oos)


def test_heldout_questions_meet_the_bars(sample_matcher: Matcher) -> None:
    top1, top3, oos = _rates(sample_matcher, _eval_rows(HELDOUT_FILE))
    assert top1 >= 0.85 and top3 >= 0.95 and oos >= 0.90, (top1, top3, oos)


# -- slips, split words, bundles, generic and off-topic wording --------------------------------


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("结昏证", "结婚登记"),  # 婚 typed as 昏: same pinyin
        ("身分证丢了", "居民身份证申领、换领、补领"),  # a common variant spelling
        ("驾照补正", "机动车驾驶证换证、补证"),
    ],
)
def test_pinyin_slips_inside_catalog_words_are_mended(matcher: Matcher, question: str, expected: str) -> None:
    result = matcher.search(question)
    assert result.best is not None and result.best.name == expected, result.matches
    assert result.confident


def test_a_two_character_sound_alike_is_offered_but_not_trusted(matcher: Matcher) -> None:
    result = matcher.search("离昏")  # 离婚 — or another word that sounds the same
    assert result.best is not None and result.best.name == "离婚登记"
    assert not result.confident


def test_speller_mends_slips_but_not_settled_or_longer_questions() -> None:
    words = ["低保", "住房公积金", "公积金", "税费"]
    known = {"低保", "公积", "积金", "住房", "房公", "税费"}
    sp = Speller(words, known)
    assert sp.correct("低宝") == ("低保", 1)
    assert sp.correct("公基金提取") == ("公积金提取", 0)  # three characters of context: no guess
    assert sp.correct("水费", settled=[True, True]) == ("水费", 0)  # a word the caller knows
    # In a longer question a two-character sound-alike is left alone: the rest names the entry.
    assert sp.correct("我家里很困难能不能申请低宝")[0].endswith("低宝")


def test_other_words_are_neither_mended_nor_read_as_catalog_words(sample_matcher: Matcher) -> None:
    # 水费 sounds like the catalog's 税费; 廉租房 holds its 租房: neither is that entry.
    for question in ("水费在哪交", "廉租房怎么申请"):
        assert not sample_matcher.search(question).confident, question


def test_words_split_by_other_words_still_match(sample_matcher: Matcher) -> None:
    best = sample_matcher.search("砍自家地里的树要批吗").best  # the catalog says 砍树
    assert best is not None and best.name == "林木采伐许可证核发"


def test_naming_two_permits_of_one_bundle_asks_for_the_bundle(matcher: Matcher) -> None:
    best = matcher.search("个体户营业执照和食品许可证").best
    assert best is not None and (best.name, best.kind) == ("开办餐饮店一件事", "bundle")


def test_asking_how_many_departments_asks_for_the_bundle(matcher: Matcher) -> None:
    best = matcher.search("开饭店要跑几个部门").best
    assert best is not None and best.kind == "bundle"


def test_one_permit_and_its_context_is_still_the_item(sample_matcher: Matcher) -> None:
    best = sample_matcher.search("公司怎么领发票").best  # 公司 is context, not a second permit
    assert best is not None and best.name == "增值税发票领用"


def test_generic_words_do_not_pull_an_entry(sample_matcher: Matcher) -> None:
    result = sample_matcher.search("孩子上初中要办什么手续")  # 孩子/办/手续 fit every entry
    assert not result.confident
    assert result.best is None or result.best.name != "新生儿出生一件事"


@pytest.mark.parametrize("question", ["离婚以后孩子抚养费谁出", "房贷利率多少", "开饭店一年能挣多少"])
def test_law_price_and_rate_questions_are_not_confident(sample_matcher: Matcher, question: str) -> None:
    assert not sample_matcher.search(question).confident


def test_rate_question_that_names_the_service_finds_it(sample_matcher: Matcher) -> None:
    best = sample_matcher.search("公积金贷款利率是多少").best
    assert best is not None and best.name == "住房公积金个人住房贷款"


def test_a_different_word_where_a_name_goes_on_is_no_match(sample_matcher: Matcher) -> None:
    # 渔业补贴 shares 业补贴 with the alias 失业补贴, but 渔 is not 失.
    assert not sample_matcher.search("渔业补贴发放").confident
    best = sample_matcher.search("离婚登记要排队吗").best  # not 结婚登记, whose name shares 婚登记
    assert best is not None and best.name == "离婚登记"


def test_confidence_follows_the_evidence(sample_matcher: Matcher) -> None:
    clear = sample_matcher.search("失业金每个月能领多少钱")
    assert clear.confident and clear.best is not None and clear.best.name == "失业保险金申领"
    # 10% of a question explained is no answer, however well that part matches.
    assert not sample_matcher.search("失业以后心情不好怎么调节自己的情绪").confident


@pytest.mark.parametrize("name", ["questions.blind.jsonl", "questions.fresh.jsonl", "questions.blind2.jsonl"])
def test_unseen_question_sets_meet_the_bars(sample_matcher: Matcher, name: str) -> None:
    rows = _eval_rows(BENCH / name)
    top1, top3, oos = _rates(sample_matcher, rows)
    assert top1 >= 0.95 and top3 >= 0.97 and oos >= 0.90, (top1, top3, oos)
    inscope = [r for r in rows if r["expect"]]
    answered = 0
    for r in inscope:
        res = sample_matcher.search(str(r["q"]))
        answered += bool(res.confident and res.best and res.best.name in r["expect"])
    assert answered / len(inscope) >= 0.85


@pytest.mark.parametrize("question", ["你好", "在吗", "好的谢谢", "早上好", "你是机器人吗", "谁是你老板"])
def test_greetings_and_small_talk_are_not_confident(sample_matcher: Matcher, question: str) -> None:
    assert not sample_matcher.search(question).confident


def test_a_greeting_before_the_question_changes_nothing(sample_matcher: Matcher) -> None:
    result = sample_matcher.search("你好，在吗？身份证丢了怎么办")
    assert result.confident and result.best is not None
    assert result.best.name == "居民身份证申领、换领、补领"


@pytest.mark.parametrize(
    "question", ["身份证号码", "身份证号码查询", "公积金余额查询", "社保查询", "医保余额"]
)
def test_looking_up_a_record_is_not_confident(sample_matcher: Matcher, question: str) -> None:
    # The catalog says how to apply for a card, not what a record holds.
    assert not sample_matcher.search(question).confident


@pytest.mark.parametrize("question", ["银行卡丢了", "驾照考试", "养老院", "邻居占了我家的宅基地怎么办"])
def test_services_next_to_catalog_words_are_not_confident(sample_matcher: Matcher, question: str) -> None:
    assert not sample_matcher.search(question).confident


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("社保卡丢了", "社会保障卡申领"),  # beside 银行卡丢了 above
        ("驾照到期换证", "机动车驾驶证换证、补证"),  # beside 驾照考试
        ("用公积金还房贷", "住房公积金提取"),  # repaying with the fund, not borrowing from it
        ("营业执照地址变了要改吗", "企业变更登记"),  # not a new licence
        ("股东要退股", "企业变更登记"),
        ("房贷还清了要解押", "不动产抵押登记"),
        ("我女人生了个娃要办啥", "新生儿出生一件事"),
    ],
)
def test_everyday_wording_is_answered_with_confidence(
    sample_matcher: Matcher, question: str, expected: str
) -> None:
    result = sample_matcher.search(question)
    assert result.best is not None and result.best.name == expected, result.matches
    assert result.confident


@pytest.mark.parametrize("question", ["食品许可证注销", "个体户注销", "营业执照年报", "结婚证补办"])
def test_a_stage_the_catalog_does_not_offer_is_not_confident(sample_matcher: Matcher, question: str) -> None:
    # The sample catalog has the 核发/设立/登记 items only: their cards would answer the wrong question.
    assert not sample_matcher.search(question).confident


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("身份证补办", "居民身份证申领、换领、补领"),
        ("社保卡补办", "社会保障卡申领"),
        ("注销抵押", "不动产抵押登记"),
    ],
)
def test_a_stage_the_entry_offers_is_answered(sample_matcher: Matcher, question: str, expected: str) -> None:
    result = sample_matcher.search(question)
    assert result.confident and result.best is not None and result.best.name == expected


def test_the_entry_for_the_asked_stage_goes_first(matcher: Matcher) -> None:
    # With both a 核发 and a 注销 item, "注销" decides between them, though only the 核发 item
    # has the alias 食品许可证.
    for question, expected in [
        ("食品许可证注销", "食品经营许可证注销"),
        ("食品许可证到期延续", "食品经营许可证延续"),
    ]:
        best = matcher.search(question).best
        assert best is not None and best.name == expected, (question, best)
