"""``noria predict --engine spark`` on a project, run as a script in the Spark test venv.

Run by test_batch_spark.py with the venv of spark_support.py (pyspark) and the project's source
and venv on PYTHONPATH; prints the delivery record (and the wall time) as JSON on its last line.
``--engine local`` runs the local engine the same way (to time both in fresh processes).

    python batch_spark_job.py PROJECT_DIR INPUT OUTPUT [--explain] [--engine local]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from noria.config import load_project
from noria.serving.batch import score_file


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("project_dir", type=Path)
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--engine", default="spark")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    project = load_project(args.project_dir, environ={})
    result = score_file(project, args.input, args.output, explain=args.explain, engine=args.engine)
    seconds = time.perf_counter() - started
    print(json.dumps({"record": result.record.to_dict(), "seconds": seconds, "path": str(result.record_path)}))


if __name__ == "__main__":
    main(sys.argv[1:])
