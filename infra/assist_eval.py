"""`make assist-eval`: the answer service's accuracy on the committed question set
(tests/data/assist_eval.yaml): top-1 and top-3 per language, the misses, and the time to build
the index and to answer (the index is built once per Lambda process, on the first question).

    python -m infra.assist_eval [--set FILE] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aftercare.adapters.assist_index import SqliteFtsIndex
from aftercare.data import safe_load
from aftercare.domain.assist import Assistant, documents, load_faqs, ranked_ids
from aftercare.domain.guides import load_guides
from aftercare.domain.rules import load_catalog
from aftercare.models.guides import GuideLanguage

DEFAULT_SET = Path(__file__).resolve().parents[1] / "tests" / "data" / "assist_eval.yaml"


def assistant() -> Assistant:
    guides, faqs, catalog = load_guides(), load_faqs(), load_catalog()
    return Assistant(SqliteFtsIndex(documents(guides, faqs, catalog)), guides, faqs, catalog)


def evaluate(questions: Sequence[dict[str, Any]], helper: Assistant) -> dict[str, Any]:
    """Top-1/top-3 accuracy per language and overall, and each miss."""
    per_lang: dict[str, dict[str, int]] = {}
    misses = []
    for item in questions:
        lang = GuideLanguage.parse(item["lang"])
        ranked = ranked_ids(helper.ask(item["q"], lang, item.get("model")))
        expected = set(item["expect"])
        counts = per_lang.setdefault(lang.value, {"n": 0, "top1": 0, "top3": 0})
        counts["n"] += 1
        counts["top1"] += bool(ranked[:1] and ranked[0] in expected)
        counts["top3"] += bool(expected & set(ranked[:3]))
        if not expected & set(ranked[:1]):
            misses.append({"q": item["q"], "expect": sorted(expected), "got": ranked[:3]})
    total = {key: sum(c[key] for c in per_lang.values()) for key in ("n", "top1", "top3")}
    return {
        "languages": {lang: _rates(c) for lang, c in sorted(per_lang.items())},
        "all": _rates(total),
        "misses_top1": misses,
    }


def _rates(counts: dict[str, int]) -> dict[str, Any]:
    n = counts["n"] or 1
    return {
        "questions": counts["n"],
        "top1": round(counts["top1"] / n, 3),
        "top3": round(counts["top3"] / n, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=DEFAULT_SET)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    questions = safe_load(args.set.read_text(encoding="utf-8"))["questions"]
    started = time.perf_counter()
    helper = assistant()
    helper.ask("warm up", GuideLanguage.EN)  # builds the index
    built_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    report = evaluate(questions, helper)
    report["index_build_ms"] = round(built_ms, 1)
    report["ms_per_question"] = round((time.perf_counter() - started) * 1000 / len(questions), 2)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0
    rows = [*report["languages"].items(), ("all", report["all"])]
    for name, rates in rows:
        print(f"{name:6} {rates['questions']:3} questions", end="  ")
        print(f"top-1 {rates['top1']:.1%}  top-3 {rates['top3']:.1%}")
    print(
        f"index built in {report['index_build_ms']} ms; {report['ms_per_question']} ms a question"
    )
    for miss in report["misses_top1"]:
        print(
            f"  top-1 miss: {miss['q']!r} expected {miss['expect']} got {miss['got']}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
