"""The plan of an incremental materialize: what the store's record allows to skip."""

from __future__ import annotations

from datetime import UTC, datetime

from noria.features.materialized import next_state, plan

T1 = datetime(2013, 1, 3, tzinfo=UTC)
T2 = datetime(2013, 1, 5, tzinfo=UTC)


def test_only_the_same_snapshot_and_definitions_up_to_an_earlier_time_is_incremental() -> None:
    state = next_state(None, "snap", "defs", ["weather", "planes"], T1)
    assert plan(state, "snap", "defs", ["weather", "planes"], T2) == {"weather": T1, "planes": T1}
    assert plan(state, "other", "defs", ["weather"], T2) == {"weather": None}  # a new snapshot
    assert plan(state, "snap", "changed", ["weather"], T2) == {"weather": None}  # new definitions
    assert plan(state, "snap", "defs", ["routes"], T2) == {"routes": None}  # never loaded
    assert plan(state, "snap", "defs", ["weather"], datetime(2013, 1, 1, tzinfo=UTC)) == {"weather": None}  # back
    assert plan(None, "snap", "defs", ["weather"], T2) == {"weather": None}
    assert plan({"snapshot_id": "snap", "definition_hash": "defs", "views": {"weather": "junk"}}, "snap", "defs",
                ["weather"], T2) == {"weather": None}  # fmt: skip


def test_the_record_keeps_views_not_loaded_this_time_unless_the_data_changed() -> None:
    state = next_state(None, "snap", "defs", ["weather", "planes"], T1)
    partial = next_state(state, "snap", "defs", ["weather"], T2)
    assert partial["views"] == {"weather": T2.isoformat(), "planes": T1.isoformat()}
    moved = next_state(state, "new", "defs", ["weather"], T2)
    assert moved["views"] == {"weather": T2.isoformat()} and moved["snapshot_id"] == "new"
