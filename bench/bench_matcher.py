"""Matcher benchmark (not a test): index build time, memory, per-question latency and accuracy
with the sample catalog plus 1,000 and 10,000 synthetic distractor items, on one core.

    python -m bench.bench_matcher [--sizes 1000 10000] [--rounds 20] [--json]
    python -m bench.bench_matcher --imported distractors.csv   # through the real importer

(`python -m bench.synthetic --count 10000 --csv distractors.csv` writes such a sheet.)

Accuracy is shown for every question set, with "conf" = right first answer and confident.
Search is single-threaded (one core); `--pin` also pins the process to one CPU, which only
makes sense on an idle machine. Latency is wall-clock per `Matcher.search` call over the dev
and held-out questions, repeated `--rounds` times; CPU time (thread time) is shown beside it
because a shared machine's load shows up in wall-clock percentiles but not in CPU time.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.synthetic import distractor_catalog
from bot.commands.matcher import EvalReport, Question, evaluate, read_questions
from knowledge.loader import load_catalog
from knowledge.matcher import Matcher
from knowledge.schema import Catalog

ROOT = Path(__file__).resolve().parent.parent
QUESTION_FILES = {
    "dev": Path(os.environ.get("YICHUANG_DEV_QUESTIONS", ROOT.parent / "shared/eval/questions.dev.jsonl")),
    "heldout": ROOT / "tests/unit/heldout_questions.jsonl",
    # Written by someone who never saw the catalog; used to calibrate `confident`.
    "blind": ROOT / "bench/questions.blind.jsonl",
    # Written before the calibration and never fitted on: the check on questions nobody tuned for.
    "fresh": ROOT / "bench/questions.fresh.jsonl",
    # A second blind set, written before anyone read the aliases or synonyms; measured, never fitted.
    "blind2": ROOT / "bench/questions.blind2.jsonl",
    # Written in session 5 from the list of names alone (no aliases, no other question set seen);
    # measured, never fitted: tune on it and it stops telling how unseen questions fare.
    "blind3": ROOT / "bench/questions.blind3.jsonl",
}


def _pin_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"cpu {cpu}"
    return "not pinned"


def _percentiles(xs: list[float]) -> dict[str, float]:
    s = sorted(xs)

    def p(q: float) -> float:
        return round(s[min(len(s) - 1, int(q / 100 * len(s)))], 3)

    return {"p50": p(50), "p95": p(95), "p99": p(99), "max": round(s[-1], 3)}


def _latency(m: Matcher, questions: list[str], rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    wall: list[float] = []
    cpu: list[float] = []
    for q in questions:  # warm-up
        m.search(q)
    gc.disable()  # a collection pause belongs to the process, not to one question
    try:
        for _ in range(rounds):
            for q in questions:
                t0, c0 = time.perf_counter(), time.thread_time()
                m.search(q)
                c1, t1 = time.thread_time(), time.perf_counter()
                wall.append((t1 - t0) * 1000)
                cpu.append((c1 - c0) * 1000)
    finally:
        gc.enable()
    return _percentiles(wall), _percentiles(cpu)


def _index_memory_mb(catalog: Catalog) -> float:
    gc.collect()
    tracemalloc.start()
    m = Matcher(catalog, memo=0)  # every question matched afresh: this measures the matching
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del m
    return round(size / 1e6, 1)


def with_imported(base: Catalog, extra: Catalog) -> Catalog:
    """The sample catalog plus every item of an imported catalog (its departments merged by name)."""
    depts = {d.name for d in base.departments}
    names = {i.name for i in base.items}
    return Catalog(
        base.center,
        [*base.departments, *(d for d in extra.departments if d.name not in depts)],
        base.windows,
        [*base.items, *(i for i in extra.items if i.name not in names)],
        base.bundles,
        root=base.root,
    )


def run(
    sizes: list[int], rounds: int, *, memory: bool, imported: str | None = None, pin: bool = False
) -> dict[str, Any]:
    base = load_catalog()
    sets: dict[str, list[Question]] = {n: read_questions(f) for n, f in QUESTION_FILES.items() if f.exists()}
    texts = [q.q for qs in sets.values() for q in qs]
    out: dict[str, Any] = {
        "pinned": _pin_one_core() if pin else "no",
        "questions": len(texts),
        "rounds": rounds,
    }
    out["runs"] = []
    catalogs: list[tuple[int, Catalog]] = [(0, base)]
    if imported:
        extra = load_catalog(imported)
        catalogs.append((len(extra.items), with_imported(base, extra)))
    else:
        catalogs += [(size, distractor_catalog(base, size)) for size in sizes]
    for size, catalog in catalogs:
        t0 = time.perf_counter()
        m = Matcher(catalog, memo=0)  # every question matched afresh: this measures the matching
        build_s = time.perf_counter() - t0
        wall, cpu = _latency(m, texts, rounds)
        run: dict[str, Any] = {
            "distractors": size,
            "entries": len(catalog.items) + len(catalog.bundles),
            "build_s": round(build_s, 2),
            "latency_ms": wall,
            "cpu_ms": cpu,
        }
        if memory:
            run["index_mb"] = _index_memory_mb(catalog)
        for name, qs in sets.items():
            report = evaluate(m, qs)
            rep = report.as_json()
            run[name] = {k: rep[k] for k in ("top1", "top3", "oos_rejection")}
            # Right first answer AND confident: the share answered without asking back.
            run[name]["top1_confident"] = EvalReport._rate(report.confident_hits, report.in_scope)
        out["runs"].append(run)
        print(_line(run), file=sys.stderr, flush=True)
    return out


def _line(r: dict[str, Any]) -> str:
    acc = "\n        ".join(
        f"{n} top1 {r[n]['top1']:.3f} top3 {r[n]['top3']:.3f} conf {r[n]['top1_confident']:.3f} "
        f"oos {r[n]['oos_rejection']:.3f}"
        for n in QUESTION_FILES
        if n in r
    )
    lat, cpu = r["latency_ms"], r["cpu_ms"]
    mem = f"  index {r['index_mb']} MB" if "index_mb" in r else ""
    return (
        f"{r['entries']:>6} entries  build {r['build_s']:.2f}s{mem}  "
        f"wall p50/p95/p99 {lat['p50']:.3f}/{lat['p95']:.3f}/{lat['p99']:.3f} ms  "
        f"cpu p50/p95/p99 {cpu['p50']:.3f}/{cpu['p95']:.3f}/{cpu['p99']:.3f} ms\n        {acc}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description="问题匹配基准测试（合成干扰事项）")
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000], help="干扰事项数量")
    p.add_argument("--rounds", type=int, default=20, help="每个问题重复次数")
    p.add_argument("--no-memory", action="store_true", help="不测内存（tracemalloc 会让建索引变慢）")
    p.add_argument("--pin", action="store_true", help="固定在一个 CPU 上（机器空闲时才有意义）")
    p.add_argument("--imported", help="用导入的表格/目录作干扰事项（代替生成器）")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    out = run(args.sizes, args.rounds, memory=not args.no_memory, imported=args.imported, pin=args.pin)
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
