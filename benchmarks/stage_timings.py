"""Sum Snakemake's per-job ``benchmark:`` files of a workflow run into a per-stage table.

Usage: python benchmarks/stage_timings.py [RUN_DIR] [--dataset demo]

RUN_DIR is the folder the workflow ran in (default: the current folder). Prints, per stage,
the number of jobs and the summed wall-clock seconds and peak memory that Snakemake recorded.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path


def stage_timings(run_dir: Path, dataset: str) -> dict[str, dict[str, float]]:
    """Per stage: jobs, summed seconds, max RSS (MB), from ``benchmarks/<dataset>/``."""
    root = run_dir / "benchmarks" / dataset
    if not root.is_dir():
        raise SystemExit(f"{root}: no benchmark files (did the workflow run there?)")
    table: dict[str, dict[str, float]] = defaultdict(lambda: {"jobs": 0, "s": 0.0, "max_rss": 0.0})
    for tsv in sorted(root.rglob("*.tsv")):
        rel = tsv.relative_to(root)
        stage = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if stage not in {"decode", "flow", "features"} and len(rel.parts) > 1:
            stage = f"{rel.parts[0]}/{rel.stem}"  # model/train, model/infer, ...
        with open(tsv) as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        entry = table[stage]
        entry["jobs"] += 1
        entry["s"] += float(row["s"])
        rss = row.get("max_rss", "NA")
        if rss not in ("NA", "-", ""):
            entry["max_rss"] = max(entry["max_rss"], float(rss))
    return dict(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", default=".", type=Path)
    parser.add_argument("--dataset", default="demo")
    args = parser.parse_args()
    table = stage_timings(args.run_dir, args.dataset)
    print(f"{'stage':<28}{'jobs':>6}{'sum s':>10}{'max RSS MB':>12}")
    for stage, e in table.items():
        print(f"{stage:<28}{int(e['jobs']):>6}{e['s']:>10.1f}{e['max_rss']:>12.0f}")
    print(f"{'total':<28}{sum(int(e['jobs']) for e in table.values()):>6}"
          f"{sum(e['s'] for e in table.values()):>10.1f}")


if __name__ == "__main__":
    main()
