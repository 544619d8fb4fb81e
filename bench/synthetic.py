"""Synthetic distractor catalogs for the matcher benchmark: what a county's full 事项目录 looks like.

A real county lists thousands of items, most of them near-duplicates of each other: the 变更 /
延续 / 注销 / 补证 variants of every licence, and dozens of departments' routine items with the
same verbs and the same materials. The generator produces exactly that, deterministically:

    python -m bench.synthetic --count 10000 --csv /tmp/distractors.csv

`distractor_catalog(base, count)` returns `base` plus `count` generated items as a Catalog;
`write_csv()` writes them in the spreadsheet import format (事项名称, 实施部门, 申报材料, ...).
Generated items carry no keywords and few aliases, as imported spreadsheets do.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
from collections.abc import Iterator
from pathlib import Path

from knowledge.schema import Catalog, Department, Fee, Item, ItemType, Material

# Variants that every licence / registration has in a real catalog.
VARIANTS = [
    "变更",
    "延续",
    "注销",
    "补证",
    "换证",
    "遗失补办",
    "变更（法定代表人）",
    "变更（地址）",
    "撤回",
    "年检",
]
_ACTION = re.compile(r"(核发|登记|申领|审批|许可|备案|申请|申报|认定|核准)$")

# Other departments' routine items: (department, objects, actions).
DOMAINS: list[tuple[str, list[str], list[str]]] = [
    (
        "县市场监督管理局",
        [
            "特种设备使用",
            "计量器具型式",
            "工业产品生产许可证",
            "广告发布",
            "食品小作坊",
            "食品摊贩",
            "小餐饮",
            "第二类医疗器械经营",
            "化妆品经营",
            "网络餐饮服务",
            "农民专业合作社",
            "个人独资企业",
            "合伙企业",
            "股份有限公司",
            "分公司",
            "外商投资企业",
            "商标质押",
            "检验检测机构资质",
        ],
        ["登记", "备案", "许可", "设立登记", "注销登记", "变更登记", "核发"],
    ),
    (
        "县卫生健康局",
        [
            "执业医师",
            "执业护士",
            "母婴保健技术服务",
            "放射诊疗",
            "消毒产品生产企业",
            "饮用水供水单位",
            "医疗机构设置",
            "乡村医生执业",
            "职业健康检查机构",
            "义诊活动",
            "医疗广告",
            "涉及饮用水卫生安全产品",
        ],
        ["注册", "执业注册", "许可", "备案", "审批", "卫生许可", "校验"],
    ),
    (
        "县公安局",
        [
            "临时身份证",
            "户籍证明",
            "身份证明",
            "边境管理区通行证",
            "剧毒化学品购买",
            "烟花爆竹运输",
            "大型群众性活动安全",
            "保安服务公司",
            "旅馆业特种行业",
            "印章刻制业",
            "机动车登记",
            "非机动车登记",
            "犬只",
            "户口登记项目",
        ],
        ["许可", "审批", "备案", "登记", "核发", "变更更正", "开具"],
    ),
    (
        "县民政局",
        [
            "社会团体成立",
            "民办非企业单位成立",
            "慈善组织",
            "养老机构",
            "殡葬服务",
            "公墓建设",
            "特困人员救助供养",
            "临时救助",
            "高龄津贴",
            "孤儿基本生活费",
            "困境儿童",
            "收养",
            "地名命名",
            "婚姻登记记录证明",
            "补领结婚证",
            "补领离婚证",
        ],
        ["登记", "备案", "审批", "申请", "给付", "认定", "核准"],
    ),
    (
        "县人力资源和社会保障局",
        [
            "劳务派遣经营",
            "人力资源服务",
            "工伤认定",
            "劳动能力鉴定",
            "职业技能等级认定",
            "就业创业证",
            "灵活就业人员社会保险",
            "企业职工养老保险关系转移",
            "失业登记",
            "创业担保贷款",
            "技能提升补贴",
            "社会保险费补贴",
            "企业年金方案",
            "特殊工时制度",
            "劳动合同",
            "工伤保险待遇",
            "丧葬补助金",
        ],
        ["许可", "申请", "核准", "备案", "办理", "认定", "申领"],
    ),
    (
        "县医疗保障局",
        [
            "门诊慢特病待遇",
            "医疗救助",
            "生育保险待遇",
            "医疗费用手工报销",
            "转外就医",
            "长期护理保险",
            "定点医药机构",
            "灵活就业人员医保",
            "医保关系转移接续",
            "大病保险",
            "医保个人账户",
        ],
        ["认定", "申请", "备案", "核准", "登记", "结算", "支付"],
    ),
    (
        "县自然资源局（不动产登记中心）",
        [
            "不动产首次",
            "不动产变更",
            "不动产注销",
            "不动产更正",
            "异议",
            "预告",
            "查封",
            "地役权",
            "乡村建设规划许可证",
            "临时用地",
            "采矿许可证",
            "探矿许可证",
            "土地复垦方案",
            "建设项目用地预审",
            "国有建设用地使用权",
            "林地使用",
            "测绘资质",
        ],
        ["登记", "审批", "核发", "许可", "审查", "备案", "核准"],
    ),
    (
        "县住房和城乡建设局",
        [
            "建筑业企业资质",
            "房地产开发企业资质",
            "燃气经营许可证",
            "城市建筑垃圾处置",
            "临时占用城市道路",
            "挖掘城市道路",
            "城市绿地占用",
            "城镇污水排入排水管网",
            "户外广告设置",
            "商品房现售",
            "房屋租赁",
            "物业服务",
            "施工图审查",
            "建设工程竣工验收",
            "建设工程消防设计审查",
            "商品房买卖合同网签",
            "住房保障",
            "公共租赁住房",
        ],
        ["核准", "审批", "许可", "备案", "核发", "申请", "登记"],
    ),
    (
        "县交通运输局",
        [
            "道路旅客运输经营",
            "出租汽车经营",
            "网络预约出租汽车经营",
            "道路运输从业资格证",
            "机动车维修经营",
            "机动车驾驶员培训",
            "道路运输证",
            "超限运输车辆行驶公路",
            "公路用地范围内设置非公路标志",
            "涉路施工",
            "危险货物道路运输经营",
            "港口经营",
            "船舶检验",
        ],
        ["许可", "备案", "核发", "审批", "换发", "补发", "注销"],
    ),
    (
        "县文化广电和旅游局",
        [
            "营业性演出",
            "网吧经营",
            "出版物零售",
            "旅行社设立",
            "文物保护单位修缮",
            "艺术品经营",
            "卫星电视广播地面接收设施安装",
            "广播电视节目制作经营",
            "印刷经营",
            "导游证",
            "星级饭店评定",
            "游艺娱乐场所",
            "歌舞娱乐场所变更",
        ],
        ["许可", "审批", "备案", "核发", "登记", "变更", "注销"],
    ),
    (
        "县教育局",
        [
            "教师资格",
            "校外培训机构",
            "幼儿园设立",
            "民办学校变更",
            "民办学校终止",
            "学籍转学",
            "义务教育入学",
            "学生资助",
            "中等职业学校招生",
            "教师资格证补发",
            "普通话水平测试",
        ],
        ["认定", "审批", "备案", "申请", "登记", "核准", "办理"],
    ),
    (
        "县农业农村局",
        [
            "农药经营许可证",
            "兽药经营许可证",
            "种子生产经营许可证",
            "动物防疫条件合格证",
            "渔业捕捞许可证",
            "农作物种子质量",
            "生猪定点屠宰",
            "拖拉机和联合收割机登记",
            "农机驾驶证",
            "家庭农场",
            "农村土地承包经营权",
            "农业机械购置补贴",
            "耕地地力保护补贴",
            "宅基地使用权",
            "动物诊疗许可证",
        ],
        ["核发", "审批", "登记", "许可", "认定", "申请", "备案"],
    ),
    (
        "县水利局",
        [
            "河道管理范围内建设项目",
            "水土保持方案",
            "取水工程验收",
            "水利工程建设",
            "河道采砂",
            "农村集体经济组织修建水库",
            "占用农业灌溉水源",
            "洪水影响评价",
            "生产建设项目水土保持设施",
        ],
        ["审批", "许可", "核准", "备案", "验收", "审查", "登记"],
    ),
    (
        "县生态环境分局",
        [
            "危险废物经营",
            "辐射安全许可证",
            "排污登记",
            "建设项目环境影响登记表",
            "突发环境事件应急预案",
            "污染防治设施拆除闲置",
            "固体废物跨省转移",
            "医疗废物处置",
            "机动车排放检验机构",
        ],
        ["许可", "备案", "审批", "核发", "登记", "申报", "变更"],
    ),
    (
        "县税务局",
        [
            "税务登记",
            "个人所得税",
            "房产税",
            "城镇土地使用税",
            "车辆购置税",
            "印花税",
            "土地增值税",
            "耕地占用税",
            "社会保险费",
            "发票代开",
            "完税证明",
            "出口退税",
            "纳税信用",
            "税收优惠",
        ],
        ["申报", "办理", "开具", "备案", "登记", "核定", "缴纳"],
    ),
    (
        "县林业局",
        [
            "林木种子生产经营许可证",
            "木材运输",
            "野生动物驯养繁殖",
            "使用林地",
            "临时占用林地",
            "森林防火期野外用火",
            "古树名木移植",
            "植物检疫证书",
            "林权",
            "野生植物采集",
        ],
        ["核发", "审批", "许可", "登记", "审核", "办理", "备案"],
    ),
    (
        "县退役军人事务局",
        [
            "退役士兵安置",
            "优抚对象抚恤补助",
            "伤残等级评定",
            "烈士褒扬金",
            "退役军人优待证",
            "光荣牌悬挂",
            "自主就业退役士兵一次性经济补助",
            "军人残疾等级",
        ],
        ["认定", "申请", "给付", "评定", "办理", "核发", "登记"],
    ),
]
# Where a generated item is dispensed: a town's service station mirrors the county item.
PLACES = [
    "",
    "（乡镇）",
    "（县级）",
    "（首次）",
    "（分支机构）",
    "（个人）",
    "（企业）",
    "（外资）",
    "（告知承诺）",
]

MATERIALS = [
    "申请书",
    "申请人身份证",
    "法定代表人身份证明",
    "授权委托书及受托人身份证",
    "营业执照",
    "场所使用证明",
    "平面布局图",
    "从业人员健康证明",
    "管理制度文本",
    "专业技术人员资格证书",
    "设备设施清单",
    "原证件",
    "遗失声明",
    "变更事项证明文件",
    "股东会决议",
    "章程修正案",
    "户口簿",
    "近期免冠照片",
    "结婚证",
    "不动产权证书",
    "购房合同",
    "土地使用权证明",
    "规划许可证",
    "环评批复文件",
    "施工合同",
    "监理合同",
    "安全生产管理制度",
    "验收报告",
    "检测报告",
    "承诺书",
    "情况说明",
    "银行账户信息",
    "医学证明",
    "社会保障卡",
    "劳动合同",
    "工资发放记录",
    "完税证明",
    "项目可行性研究报告",
    "会议纪要",
]
FEES = ["免费", "免费", "免费", "工本费10元", "工本费20元", "证书费5元", "按规定标准收取"]
DAYS = [0, 0, 1, 3, 5, 7, 10, 15, 20, 30]


def _stem(name: str) -> str:
    return _ACTION.sub("", name) or name


def _materials(rng: random.Random, extra: list[str]) -> list[Material]:
    names = list(dict.fromkeys([*extra, *rng.sample(MATERIALS, rng.randint(3, 7))]))
    return [Material(name=n) for n in names]


def _fees(rng: random.Random) -> list[Fee]:
    text = rng.choice(FEES)
    if text == "免费":
        return []
    m = re.search(r"(\d+)元", text)
    return [Fee(name=text, amount=float(m.group(1)))] if m else [Fee(name="服务费", rule=text)]


def _days(rng: random.Random) -> tuple[int, int]:
    promised = rng.choice(DAYS)
    return (promised + rng.choice([0, 5, 10]) if promised else rng.choice([0, 5])), promised


def _candidates(base: Catalog) -> Iterator[tuple[str, str, list[str]]]:
    """(name, department, variant-specific materials), near-duplicates of the real items first."""
    for it in base.items:
        stem = _stem(it.name)
        for v in VARIANTS:
            yield f"{stem}{v}", it.department, ["原证件"] if v in ("换证", "补证", "遗失补办") else []
    for place in PLACES:
        for dept, objects, actions in DOMAINS:
            for obj in objects:
                for act in actions:
                    yield f"{obj}{act}{place}", dept, []
    for place in PLACES[1:]:
        for it in base.items:
            yield f"{it.name}{place}", it.department, []
    for dept, objects, _ in DOMAINS:  # last resort, only for very large counts
        for obj in objects:
            for v in VARIANTS:
                for place in PLACES:
                    yield f"{obj}{v}{place}", dept, []


def distractor_items(base: Catalog, count: int, seed: int = 7) -> list[Item]:
    rng = random.Random(seed)
    taken = {i.name for i in base.items} | {b.name for b in base.bundles}
    taken_aliases = {a for i in base.items for a in i.aliases} | {a for b in base.bundles for a in b.aliases}
    out: list[Item] = []
    for name, dept, extra in _candidates(base):
        if len(out) >= count:
            break
        if name in taken:
            continue
        taken.add(name)
        statutory, promised = _days(rng)
        # About one imported row in ten carries a 别名, usually the bare object name.
        alias = re.sub(r"[（）()]", "", _stem(name))
        aliases = [alias] if rng.random() < 0.1 and alias not in taken | taken_aliases else []
        taken_aliases.update(aliases)
        out.append(
            Item(
                name=name,
                code=f"SYN-{len(out) + 1:05d}",
                department=dept,
                type=rng.choice(list(ItemType)),
                materials=_materials(rng, extra),
                statutory_days=statutory,
                promised_days=promised,
                fees=_fees(rng),
                aliases=aliases,
            )
        )
    if len(out) < count:
        raise ValueError(f"generator can make at most {len(out)} distinct items")
    return out


def distractor_catalog(base: Catalog, count: int, seed: int = 7) -> Catalog:
    """`base` plus `count` generated items (departments added as needed)."""
    items = distractor_items(base, count, seed)
    known = {d.name for d in base.departments}
    new = sorted({i.department for i in items} - known)
    depts = [*base.departments, *(Department(id=f"syn{n}", name=d) for n, d in enumerate(new))]
    return Catalog(base.center, depts, base.windows, [*base.items, *items], base.bundles, root=base.root)


def _days_text(days: int) -> str:
    return "即办" if days == 0 else f"{days}个工作日"


def write_csv(items: list[Item], path: Path) -> None:
    """The spreadsheet import format (knowledge/spreadsheet.py reads it)."""
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(["事项名称", "实施部门", "申报材料", "收费标准", "法定时限", "承诺时限", "别名"])
        for it in items:
            fee = "；".join(x.name for x in it.fees) or "免费"
            w.writerow(
                [
                    it.name,
                    it.department,
                    "\n".join(m.name for m in it.materials),
                    fee,
                    _days_text(it.statutory_days),
                    _days_text(it.promised_days),
                    "；".join(it.aliases),
                ]
            )


def main() -> None:
    from knowledge.loader import load_catalog

    p = argparse.ArgumentParser(description="生成合成干扰事项（基准测试用）")
    p.add_argument("--count", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--csv", type=Path, required=True, help="写出的 CSV 文件（导入格式）")
    args = p.parse_args()
    items = distractor_items(load_catalog(), args.count, args.seed)
    write_csv(items, args.csv)
    print(f"已写出 {len(items)} 条合成事项：{args.csv}")


if __name__ == "__main__":
    main()
