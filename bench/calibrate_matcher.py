"""Fit and check the matcher's `confident` rule (not a test): a logistic model over the evidence
`Matcher.explain` reports for the best match, fitted on the question sets pooled.

    python -m bench.calibrate_matcher            # fit, cross-check, reliability table
    python -m bench.calibrate_matcher --extra bench/questions.fresh.jsonl  # + a set never fitted on
    python -m bench.calibrate_matcher --current  # only evaluate the constants in knowledge/matcher.py

A question counts as "right" when it is in scope and the first match is an expected entry; an
out-of-scope question or a wrong first match counts as "wrong". The fitted weights are printed in
the form of `CONFIDENCE_WEIGHTS`; the threshold is the lowest that keeps out-of-scope rejection at
`--min-rejection` or better on every set (the bar is 0.90; the default leaves a margin for
questions nobody has written yet). Honest checks: 5-fold cross-validation on the pooled
questions, and leave-one-set-out (fit on the other sets, score the held-out one).
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path
from typing import Any

import numpy as np

from bench.bench_matcher import QUESTION_FILES
from bot.commands.matcher import Question, read_questions
from knowledge import matcher as matcher_module
from knowledge.loader import load_catalog
from knowledge.matcher import Matcher

SETS: dict[str, Path] = {n: QUESTION_FILES[n] for n in ("dev", "heldout", "blind")}  # fitted on
FEATURES = [f for f in matcher_module.CONFIDENCE_WEIGHTS if f != "bias"]
L2 = 0.05  # a little shrinkage: a few hundred questions, a handful of weights
BINS = [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0001]


class Row:
    def __init__(self, set_name: str, qu: Question, m: Matcher):
        r = m.explain(qu.q)
        self.set = set_name
        self.q = qu.q
        self.in_scope = bool(qu.expect)
        names = [x.name for x in r.result.matches]
        self.top1 = bool(names) and names[0] in qu.expect
        self.top3 = bool(set(qu.expect) & set(names[:3]))
        self.right = self.in_scope and self.top1
        self.confident = r.result.confident  # as the matcher decides it now
        # Decided by a rule, not by the model: nothing matched, off-topic, a sound-alike guess or a
        # stage of a procedure the best entry does not offer.
        self.forced = not r.features or self._ruled(r.features)
        self.x = [r.features.get(f, 0.0) for f in FEATURES]

    @staticmethod
    def _ruled(f: dict[str, float]) -> bool:
        named = f["full_label"] >= matcher_module.NAMED_OUTRIGHT
        return (f["off_topic"] > 0 and not named) or f["guessed"] > 0 or f["unmet_stage"] > 0


def fit(rows: list[Row]) -> np.ndarray:
    """Logistic regression by Newton's method (bias first), L2 on the weights only."""
    usable = [r for r in rows if not r.forced]
    x = np.array([[1.0, *r.x] for r in usable])
    y = np.array([1.0 if r.right else 0.0 for r in usable])
    w = np.zeros(x.shape[1])
    reg = np.full(x.shape[1], L2)
    reg[0] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-(x @ w)))
        grad = x.T @ (p - y) + reg * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(reg) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def prob(w: np.ndarray, r: Row) -> float:
    if r.forced:
        return 0.0
    z = float(w[0] + np.dot(w[1:], r.x))
    return 1 / (1 + math.exp(-z))


def pick_threshold(ps: list[float], rows: list[Row], min_rejection: float) -> float:
    """The lowest threshold keeping every set's out-of-scope rejection at `min_rejection`."""
    for t in sorted({round(p, 3) for p in ps} | {0.5}):
        if all(rejection([p >= t for p in ps], rows, s) >= min_rejection for s in SETS):
            return t
    return 1.0


def rejection(conf: list[bool], rows: list[Row], set_name: str) -> float:
    oos = [c for c, r in zip(conf, rows, strict=True) if r.set == set_name and not r.in_scope]
    return sum(not c for c in oos) / len(oos) if oos else 1.0


def report(conf: list[bool], rows: list[Row], title: str) -> None:
    print(title)
    print("  set      n    top1   top3   top1+conf  conf-precision  oos-reject  wrong+conf")
    for s in [*SETS, "all"]:
        idx = [i for i, r in enumerate(rows) if s in ("all", r.set)]
        ins = [i for i in idx if rows[i].in_scope]
        oos = [i for i in idx if not rows[i].in_scope]
        confident = [i for i in idx if conf[i]]
        right_conf = sum(rows[i].right for i in confident)
        wrong_in_scope = sum(1 for i in ins if conf[i] and not rows[i].top1)
        print(
            f"  {s:7} {len(idx):4}  {_r(sum(rows[i].top1 for i in ins), len(ins))}  "
            f"{_r(sum(rows[i].top3 for i in ins), len(ins))}  "
            f"{_r(sum(rows[i].right and conf[i] for i in ins), len(ins))}      "
            f"{_r(right_conf, len(confident))}          "
            f"{_r(sum(not conf[i] for i in oos), len(oos))}      {wrong_in_scope}"
        )


def _r(a: int, n: int) -> str:
    return f"{a / n:.3f}" if n else "  —  "


def reliability(ps: list[float], rows: list[Row], title: str) -> None:
    print(title)
    print("  predicted       n   mean p   share right")
    for lo, hi in zip(BINS, BINS[1:], strict=False):
        sel = [(p, r) for p, r in zip(ps, rows, strict=True) if lo <= p < hi]
        if sel:
            mean = sum(p for p, _ in sel) / len(sel)
            right = sum(r.right for _, r in sel) / len(sel)
            print(f"  {lo:.1f}–{min(hi, 1.0):.1f}   {len(sel):5}   {mean:.3f}    {right:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description="拟合并检验匹配器的“有把握”判定")
    p.add_argument("--current", action="store_true", help="只评估 matcher.py 里现有的常数")
    p.add_argument("--min-rejection", type=float, default=0.99, help="每个问题集的目录外拒答率下限")
    p.add_argument("--extra", nargs="*", default=[], help="再加评估用问题集（不参与拟合）")
    args = p.parse_args()
    m = Matcher(load_catalog())
    rows = [Row(name, qu, m) for name, path in SETS.items() for qu in read_questions(path)]
    extra = [Row(Path(f).stem, qu, m) for f in args.extra for qu in read_questions(Path(f))]
    report([r.confident for r in rows], rows, "Current constants in knowledge/matcher.py:")
    for name in {r.set for r in extra}:
        sub = [r for r in extra if r.set == name]
        print(f"  {name}: ", end="")
        _one_line([r.confident for r in sub], sub)
    if args.current:
        return

    w = fit(rows)
    ps = [prob(w, r) for r in rows]
    t = pick_threshold(ps, rows, args.min_rejection)
    print("\nFitted on all sets:")
    print("CONFIDENCE_WEIGHTS = {")
    print(f'    "bias": {w[0]:.3f},')
    for f, v in zip(FEATURES, w[1:], strict=True):
        print(f'    "{f}": {v:.3f},')
    print("}")
    print(f"CONFIDENCE_THRESHOLD = {t:.3f}")
    report([p >= t for p in ps], rows, "Fitted rule, in sample:")
    for name in {r.set for r in extra}:
        sub = [r for r in extra if r.set == name]
        print(f"  {name}: ", end="")
        _one_line([prob(w, r) >= t for r in sub], sub)

    # 5-fold cross-validation: every question scored by a model that never saw it.
    order = list(range(len(rows)))
    random.Random(7).shuffle(order)
    cv = [0.0] * len(rows)
    for k in range(5):
        test = set(order[k::5])
        wk = fit([r for i, r in enumerate(rows) if i not in test])
        for i in test:
            cv[i] = prob(wk, rows[i])
    reliability(cv, rows, "\nReliability (5-fold cross-validated probabilities, all sets):")
    report([p >= t for p in cv], rows, f"5-fold cross-validated, threshold {t:.3f}:")

    # Leave one set out: the honest check for questions written by someone else.
    print("\nLeave one set out (fit on the others, threshold chosen on the others):")
    for s in SETS:
        train = [r for r in rows if r.set != s]
        ws = fit(train)
        ts = pick_threshold([prob(ws, r) for r in train], train, args.min_rejection)
        held = [r for r in rows if r.set == s]
        print(f"  {s:8} threshold {ts:.3f}: ", end="")
        _one_line([prob(ws, r) >= ts for r in held], held)


def _one_line(conf: list[bool], rows: list[Row]) -> None:
    ins = [(c, r) for c, r in zip(conf, rows, strict=True) if r.in_scope]
    oos = [c for c, r in zip(conf, rows, strict=True) if not r.in_scope]
    out: dict[str, Any] = {
        "top1": _r(sum(r.top1 for _, r in ins), len(ins)),
        "top1+conf": _r(sum(r.right and c for c, r in ins), len(ins)),
        "oos-reject": _r(sum(not c for c in oos), len(oos)),
        "wrong+conf": sum(1 for c, r in ins if c and not r.top1),
    }
    print("  ".join(f"{k} {v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
