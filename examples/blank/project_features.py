"""Feature functions of the project, named in features.yaml as ``project_features:<name>``.

Request functions get the request columns as numpy arrays (ints int64, floats float64 with
NaN for missing values, strings object with None, timestamps datetime64[ns] in UTC) and return
arrays, one value per row: the very same call computes a training set and answers one request.
Source functions (``fn(tables, **params) -> DataFrame``) compute feature tables from snapshot
tables: entity keys, ``event_timestamp`` (when the values became known) and the features.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def prediction_time(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """The moment of the prediction: no feature value known later may reach the row."""
    return columns["event_time"]
