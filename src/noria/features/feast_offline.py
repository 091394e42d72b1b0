"""The same point-in-time join done by Feast's file offline store (``get_historical_features``).

Kept as a second engine for checking and benchmarking Noria's DuckDB join: both read the same
Parquet files and must return identical values. Two quirks of the file store are worked
around so that no entity row is lost: it drops entity rows that share their join keys and
timestamp with another row (so each view is asked for the distinct (keys, timestamp) pairs
only), and it drops entity rows whose every candidate value is older than the TTL (so the
result is merged back onto all rows, missing ones getting missing values).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import pandas as pd

from noria.features.definitions import Definitions
from noria.features.transform import Arrays

GROUP = "noria_group"


def feast_join(
    defs: Definitions, store: Any, views: list[str], keys: Arrays, ts: np.ndarray, matched: dict[str, int]
) -> Arrays:
    """Per view, Feast's historical retrieval over the distinct (keys, timestamp) pairs, merged back."""
    import pytz

    out: Arrays = {}
    # pytz.UTC: Feast's file store re-localizes timestamps row by row unless their tz *is* pytz.UTC.
    stamps = pd.Series(pd.DatetimeIndex(ts).tz_localize(pytz.UTC))
    for view in views:
        spec = defs.config.feature_views[view]
        names = defs.join_keys(view)
        rows = pd.DataFrame({k: keys[k] for k in names})
        rows["event_timestamp"] = stamps
        group = rows.groupby([*names, "event_timestamp"], sort=False, dropna=False).ngroup().to_numpy()
        first = np.unique(group, return_index=True)[1]
        entity_df = rows.iloc[first].reset_index(drop=True)
        entity_df[GROUP] = group[first]
        # Feast joins a missing key to nothing only if it is not NaN on both sides: make it a value no row has.
        for k in names:
            if entity_df[k].dtype == object:
                entity_df[k] = entity_df[k].where(entity_df[k].notna(), "")
        with contextlib.redirect_stdout(io.StringIO()):
            result = store.get_historical_features(
                entity_df=entity_df, features=[f"{view}:{f}" for f in spec.features]
            ).to_df()
        by_group = result.set_index(GROUP)
        found = np.isin(group, by_group.index.to_numpy())
        has_value = by_group[list(spec.features)].notna().any(axis=1)
        matched[view] = int(np.isin(group, by_group.index[has_value.to_numpy()].to_numpy()).sum())
        for feature, fs in spec.features.items():
            column = by_group[feature].reindex(group)
            if fs.type == "str":
                values = column.astype(object).where(column.notna(), None).to_numpy()
            else:
                values = pd.to_numeric(column).to_numpy(dtype=np.float64, na_value=np.nan)
            values[~found] = None if fs.type == "str" else np.nan
            out[feature] = values
    return out
