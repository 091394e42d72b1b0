"""Run Noria's benchmarks side by side with their peers; write JSON + Markdown results.

    python benchmarks/run.py                 # every benchmark
    python benchmarks/run.py cli_startup     # one (or several) by name
    python benchmarks/run.py --quick         # fewer repetitions, for a smoke run
    python benchmarks/run.py scale           # the scale benchmark (hours: only when named)

Each result lands in benchmarks/results/<name>.{json,md}; a combined table is written to
benchmarks/results/README.md and printed. Exit status is 0 even when a target is missed:
the table says so, and CI does not gate on timing.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import RESULTS, Result  # noqa: E402

ONLY_WHEN_NAMED = {"scale"}  # runs for hours (N = 1 .. 30 years of data)


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(available())})")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    names = args.names or [n for n in available() if n not in ONLY_WHEN_NAMED]
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(available())}")
    sections = []
    for name in names:
        module = importlib.import_module(f"bench_{name}")
        print(f"== {name}: {module.TITLE}", flush=True)
        result: Result = module.run(quick=args.quick)
        js, md = result.save()
        text = result.to_markdown()
        print(text)
        print(f"   -> {js.relative_to(HERE.parent)}, {md.relative_to(HERE.parent)}\n", flush=True)
        sections.append(text)
    if not args.names:
        (RESULTS / "README.md").write_text("# Benchmark results\n\n" + "\n".join(sections), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
