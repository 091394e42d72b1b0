"""Table-level quality gates: judgements on a whole table of one ingest, after its rows are
validated and before anything is written.

Row rules (types, bounds, checks) quarantine single rows; a gate looks at the table as a whole
and stops an ingest whose rows each look fine but which as a whole is wrong: a file where half
the rows are quarantined, a column that is suddenly all missing, a month with a tenth of its
usual rows (a truncated export), a label column with no value at all. Each table declares its
gates under ``quality:`` (:class:`noria.config.QualitySpec`); the label gate needs no
declaration. A failed gate refuses the snapshot or, with ``on_fail: warn``, is kept as a
warning in the summary and the lineage record.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from noria.errors import DataError
from noria.periods import month_of_key

if TYPE_CHECKING:
    from noria.config import Project, TableSpec
    from noria.data.validate import ValidatedTable


@dataclass
class TableStats:
    """What the gates read of a table's ingest, summed over the parts it was validated in
    (one month at a time for a partitioned table): counts, never the rows themselves."""

    read: int = 0
    accepted: int = 0
    quarantined: int = 0
    rules: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)  # accepted rows with no value, per column
    month_rows: dict[int, int] = field(default_factory=dict)  # accepted rows per partition (year * 100 + month)

    @classmethod
    def of(cls, table: ValidatedTable, month: int | None = None) -> TableStats:
        """The stats of one validated part; ``month``: the partition all its accepted rows are in."""
        accepted = table.accepted
        return cls(
            read=table.read,
            accepted=len(accepted),
            quarantined=len(table.quarantined),
            rules=dict(table.rule_counts),
            missing={str(c): int(n) for c, n in accepted.isna().sum().items()},
            month_rows={month: len(accepted)} if month is not None and len(accepted) else {},
        )

    def __add__(self, other: TableStats) -> TableStats:
        def plus(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
            return {k: a.get(k, 0) + b.get(k, 0) for k in a | b}

        months = {k: self.month_rows.get(k, 0) + other.month_rows.get(k, 0) for k in self.month_rows | other.month_rows}
        return TableStats(
            self.read + other.read,
            self.accepted + other.accepted,
            self.quarantined + other.quarantined,
            plus(self.rules, other.rules),
            plus(self.missing, other.missing),
            months,
        )


@dataclass(frozen=True)
class GateFailure:
    """One gate one table failed: which, the figure measured, the threshold, what to do."""

    table: str
    gate: str  # quarantined | missing:<column> | rows_vs_previous | label_missing
    message: str
    fix: str
    refuse: bool

    def line(self) -> str:
        return f"table {self.table!r}: gate {self.gate}: {self.message}"


def judge(
    project: Project,
    name: str,
    spec: TableSpec,
    table: TableStats,
    previous: Path | None,
) -> list[GateFailure]:
    """The gates table ``name`` fails in this ingest.

    ``previous``: the table's folder in the current snapshot (None before the first).
    """
    q = spec.quality
    refuse = q.on_fail == "refuse"
    where = f"data.tables.{name}.quality"
    out: list[GateFailure] = []

    read = table.read
    if q.max_quarantined is not None and read:
        share = table.quarantined / read
        if share > q.max_quarantined:
            top = ", ".join(f"{rule} x{n}" for rule, n in sorted(table.rules.items(), key=lambda kv: -kv[1])[:3])
            out.append(
                GateFailure(
                    name,
                    "quarantined",
                    f"{table.quarantined:,} of {read:,} rows quarantined ({share:.1%}), more than "
                    f"max_quarantined {q.max_quarantined:.1%} (most broken: {top})",
                    f"look at the quarantined rows and fix the source, or raise {where}.max_quarantined",
                    refuse,
                )
            )

    accepted = table.accepted
    if accepted and q.max_missing:
        default = q.max_missing.get("*")
        for column in spec.columns:
            limit = q.max_missing.get(column, default)
            if limit is None:
                continue
            share = table.missing.get(column, 0) / accepted
            if share > limit:
                out.append(
                    GateFailure(
                        name,
                        f"missing:{column}",
                        f"{column} is missing in {share:.1%} of {accepted:,} accepted rows, more than "
                        f"max_missing {limit:.1%}",
                        f"check how the source writes {column}, or raise {where}.max_missing.{column}",
                        refuse,
                    )
                )

    if q.min_rows_vs_previous is not None and previous is not None and previous.is_dir():
        out.extend(_rows_vs_previous(name, spec, table, previous, q.min_rows_vs_previous, refuse, where))

    label = _label_column(project, name)
    if label is not None and accepted and table.missing.get(label, 0) == accepted:
        out.append(
            GateFailure(
                name,
                "label_missing",
                f"the label column {label} (model.target.column) is missing in all {accepted:,} accepted rows",
                "check the source export (the outcome column came empty), or ingest these months once their "
                "outcomes are known",
                refuse,
            )
        )
    return out


def _rows_vs_previous(
    name: str,
    spec: TableSpec,
    table: TableStats,
    previous: Path,
    ratio: float,
    refuse: bool,
    where: str,
) -> list[GateFailure]:
    from noria.data.snapshots import count_rows, month_dirs

    fix = f"check that the source file is complete, or lower {where}.min_rows_vs_previous"
    if spec.partition is None:
        before = count_rows(previous)
        now = table.accepted
        if before and now < ratio * before:
            msg = f"{now:,} rows, {now / before:.0%} of the {before:,} in the snapshot before (min {ratio:.0%})"
            return [GateFailure(name, "rows_vs_previous", msg, fix, refuse)]
        return []
    per_month = [count_rows(folder) for folder in month_dirs(previous.parent, previous.name).values()]
    if not per_month:
        return []
    typical = statistics.median(per_month)
    short = sorted((month_of_key(k), n) for k, n in table.month_rows.items() if n < ratio * typical)
    if not short:
        return []
    shown = ", ".join(f"{month}: {n:,} rows" for month, n in short[:6])
    msg = (
        f"{len(short)} month(s) hold fewer than {ratio:.0%} of the {typical:,.0f} rows of a typical month "
        f"in the snapshot before ({shown})"
    )
    return [GateFailure(name, "rows_vs_previous", msg, fix, refuse)]


def _label_column(project: Project, table: str) -> str | None:
    """The label column when it is a column of ``table`` (a label function is judged at training)."""
    target = project.config.model.target
    if target is None or target.column is None:
        return None
    if target.table is not None:
        return target.column if target.table == table else None
    holders = [n for n, spec in project.config.data.tables.items() if target.column in spec.columns]
    return target.column if holders == [table] else None


def refuse(failures: list[GateFailure], kept: list[str]) -> None:
    """Raise the refusal for the gates that refuse, naming each (and where the rows were kept)."""
    refusing = [f for f in failures if f.refuse]
    if not refusing:
        return
    lines = "; ".join(f.line() for f in refusing)
    fixes = "; ".join(dict.fromkeys(f.fix for f in refusing))
    where = f" (quarantined rows kept for a look: {', '.join(kept)})" if kept else ""
    raise DataError(
        f"ingest refused by {len(refusing)} quality gate(s): {lines}{where}; nothing was written",
        fix=f"{fixes}; or set on_fail: warn under the table's quality to take the data with a warning",
    )
