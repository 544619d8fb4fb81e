"""`yichuang ask` and `yichuang eval`: try the question matcher from the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowledge.loader import CatalogError, load_catalog
from knowledge.matcher import Matcher, MatchResult
from knowledge.schema import Catalog


def register(subparsers: Any) -> None:
    ask = subparsers.add_parser("ask", help="用一个问题试查事项目录")
    ask.add_argument("question", help="群众的问题，例如「开饭馆要办什么证」")
    ask.add_argument("--json", action="store_true", help="输出 JSON")
    ask.add_argument("--catalog", help="事项目录文件夹或 .xlsx/.csv 表格（默认：CATALOG_DIR 或示例目录）")
    ask.add_argument("--limit", type=int, default=5, help="最多列出几个候选（默认 5）")
    ask.set_defaults(func=cmd_ask)

    ev = subparsers.add_parser("eval", help="用评测文件（.jsonl）评估匹配准确率和速度")
    ev.add_argument("file", help='评测文件，每行 {"q": "问题", "expect": ["事项名称", …]}')
    ev.add_argument("--json", action="store_true", help="输出 JSON")
    ev.add_argument("--catalog", help="事项目录文件夹或 .xlsx/.csv 表格（默认：CATALOG_DIR 或示例目录）")
    ev.set_defaults(func=cmd_eval)


def _load(path: str | None) -> Catalog | None:
    if path is None:
        from bot.settings import Settings

        configured = Settings().catalog_dir
        path = str(configured) if configured else None
    try:
        return load_catalog(path)
    except CatalogError as e:
        print(e.report(), file=sys.stderr)
        return None


def _result_json(r: MatchResult) -> dict[str, Any]:
    return {
        "question": r.question,
        "confident": r.confident,
        "matches": [{"name": m.name, "kind": m.kind, "score": m.score} for m in r.matches],
    }


def cmd_ask(args: argparse.Namespace) -> int:
    if args.limit < 1:
        print("--limit 应为正整数", file=sys.stderr)
        return 2
    catalog = _load(args.catalog)
    if catalog is None:
        return 1
    result = Matcher(catalog).search(args.question, limit=args.limit)
    if args.json:
        print(json.dumps(_result_json(result), ensure_ascii=False))
        return 0
    if not result.matches:
        print("没有找到相关事项。")
        return 0
    print("有把握的匹配：" if result.confident else "没有把握，可能是以下事项：")
    for n, m in enumerate(result.matches, start=1):
        kind = "一件事" if m.kind == "bundle" else "事项"
        print(f"  {n}. {m.name}（{kind}）  {m.score:.3f}")
    return 0


class EvalFileError(Exception):
    """A problem with the evaluation file, worded for the operator (Chinese, with the line)."""


@dataclass(frozen=True)
class Question:
    line: int
    q: str
    expect: tuple[str, ...]


def read_questions(path: Path) -> list[Question]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvalFileError(f"找不到评测文件：{path}") from None
    except IsADirectoryError:
        raise EvalFileError(f"{path} 是文件夹，应为 .jsonl 文件") from None
    except UnicodeDecodeError:
        raise EvalFileError(f"{path} 不是 UTF-8 编码的文本文件") from None
    except OSError as e:
        raise EvalFileError(f"无法读取评测文件 {path}：{e.strerror}") from None
    out: list[Question] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError:
            raise EvalFileError(f"{path} 第 {n} 行：不是有效的 JSON") from None
        if not isinstance(row, dict):
            raise EvalFileError(f'{path} 第 {n} 行：应为 {{"q": …, "expect": […]}} 形式的对象')
        q, expect = row.get("q"), row.get("expect")
        if not isinstance(q, str) or not q.strip():
            raise EvalFileError(f"{path} 第 {n} 行：缺少问题文字 q")
        if not isinstance(expect, list) or not all(isinstance(e, str) for e in expect):
            raise EvalFileError(f"{path} 第 {n} 行：expect 应为事项名称的列表（目录外问题写 []）")
        out.append(Question(n, q, tuple(expect)))
    if not out:
        raise EvalFileError(f"{path} 里没有任何问题")
    return out


@dataclass
class EvalReport:
    total: int = 0
    in_scope: int = 0
    out_of_scope: int = 0
    top1_hits: int = 0
    top3_hits: int = 0
    confident_hits: int = 0  # in scope, right answer first and confident: shown without asking back
    rejected: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    misses: list[dict[str, Any]] = field(default_factory=list)

    @staticmethod
    def _rate(hits: int, n: int) -> float | None:
        return round(hits / n, 4) if n else None

    def percentile(self, p: float) -> float:
        xs = sorted(self.latencies_ms)
        if not xs:
            return 0.0
        # Nearest-rank: a reported p99 is a latency some question really had.
        k = max(0, min(len(xs) - 1, int(-(-p * len(xs) // 100)) - 1))
        return round(xs[k], 3)

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "top1": self._rate(self.top1_hits, self.in_scope),
            "top3": self._rate(self.top3_hits, self.in_scope),
            "oos_rejection": self._rate(self.rejected, self.out_of_scope),
            "latency_ms": {
                "p50": self.percentile(50),
                "p95": self.percentile(95),
                "p99": self.percentile(99),
            },
            "misses": self.misses,
        }


def evaluate(matcher: Matcher, questions: list[Question]) -> EvalReport:
    rep = EvalReport(total=len(questions))
    matcher.search(questions[0].q)  # warm-up: first-call costs are not per-question latency
    for qu in questions:
        t0 = time.perf_counter()
        r = matcher.search(qu.q, limit=5)
        rep.latencies_ms.append((time.perf_counter() - t0) * 1000)
        names = [m.name for m in r.matches]
        expect = set(qu.expect)
        if expect:
            rep.in_scope += 1
            top1 = bool(names) and names[0] in expect
            rep.top1_hits += top1
            rep.top3_hits += bool(expect & set(names[:3]))
            rep.confident_hits += top1 and r.confident
            ok = top1
        else:
            rep.out_of_scope += 1
            rep.rejected += not r.confident
            ok = not r.confident
        if not ok:
            rep.misses.append(
                {
                    "line": qu.line,
                    "q": qu.q,
                    "expect": list(qu.expect),
                    "got": names[:3],
                    "confident": r.confident,
                }
            )
    return rep


def _fmt(rate: float | None, hits: int, n: int) -> str:
    return "—（无此类问题）" if rate is None else f"{rate:.3f}（{hits}/{n}）"


def cmd_eval(args: argparse.Namespace) -> int:
    try:
        questions = read_questions(Path(args.file))
    except EvalFileError as e:
        print(e, file=sys.stderr)
        return 2
    catalog = _load(args.catalog)
    if catalog is None:
        return 1
    known = {i.name for i in catalog.items} | {b.name for b in catalog.bundles}
    unknown = [(qu.line, n) for qu in questions for n in qu.expect if n not in known]
    if unknown:
        shown = "；".join(f"第 {line} 行「{n}」" for line, n in unknown[:5])
        more = f" 等 {len(unknown)} 处" if len(unknown) > 5 else ""
        print(f"注意：期望的事项不在事项目录中：{shown}{more}", file=sys.stderr)
    rep = evaluate(Matcher(catalog), questions)
    out = rep.as_json()
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
        return 0
    print(f"共 {rep.total} 题：目录内 {rep.in_scope}，目录外 {rep.out_of_scope}")
    print(f"Top-1 命中率：{_fmt(out['top1'], rep.top1_hits, rep.in_scope)}")
    print(f"Top-3 命中率：{_fmt(out['top3'], rep.top3_hits, rep.in_scope)}")
    confident_rate = EvalReport._rate(rep.confident_hits, rep.in_scope)
    print(f"Top-1 且有把握：{_fmt(confident_rate, rep.confident_hits, rep.in_scope)}")
    print(f"目录外拒答率：{_fmt(out['oos_rejection'], rep.rejected, rep.out_of_scope)}")
    lat = out["latency_ms"]
    print(f"每题耗时（毫秒）：p50 {lat['p50']:.3f}  p95 {lat['p95']:.3f}  p99 {lat['p99']:.3f}")
    if rep.misses:
        print(f"未命中 {len(rep.misses)} 题：")
        for m in rep.misses:
            want = "、".join(m["expect"]) or "（目录外，应无把握）"
            got = " / ".join(m["got"]) or "（无）"
            sure = "有把握" if m["confident"] else "无把握"
            print(f"  第 {m['line']} 行「{m['q']}」期望 {want}；得到 {got}（{sure}）")
    return 0
