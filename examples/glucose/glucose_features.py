"""Feature transformations of the glucose project, referenced from features.yaml by name.

The data: one person's continuous glucose monitor (CGM), a reading about every 5 minutes,
with gaps (sensor changes every few days, lost signal). Times are the device's clock,
naive in the file and stored as UTC.

Kinds of function here:

* source functions ``fn(tables, **params) -> DataFrame``: snapshot tables in, feature table
  out (``patient_id`` + ``event_timestamp`` = when the values became known + features);
* request functions ``fn(columns, **params)``: numpy arrays of the request in (timestamps as
  datetime64[ns] UTC), one array per feature out; the same call on a training set and on
  one request;
* the label function ``glucose_in_30_min(tables) -> DataFrame`` (``time``, ``label``,
  ``label_time``) and the ``persistence`` baseline ``fn(frame) -> array``.

Leakage rule: a feature row stamped ``T`` is computed from readings at or before ``T`` only.
A reading is known the moment it is taken (``event_timestamp`` = its time), so for a
prediction at ``t`` the as-of join uses the latest reading at or before ``t``. Look-backs
are in *time*, not in rows, so a gap never turns an old reading into a "5 minutes ago" one.
The label (the reading 30 minutes after ``t``) is never a feature.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

# The data holds one person; the entity key is this constant, the same for feature rows and
# requests (``reading_context`` computes it), so another person's data would only change it.
PATIENT_ID = "patient-1"


def readings_series(readings: pd.DataFrame) -> pd.DataFrame:
    """The readings by time: UTC ``DatetimeIndex`` (sorted, one row per time), ``glucose``
    and, when read, ``sensor_signal`` as floats (``nil`` and non-positive signals are missing)."""
    times = pd.to_datetime(readings["time"], utc=True).astype("datetime64[ns, UTC]")
    columns = {"glucose": pd.to_numeric(readings["glucose"], errors="coerce").astype("float64").to_numpy()}
    if "sensor_signal" in readings:
        signal = pd.to_numeric(readings["sensor_signal"], errors="coerce").astype("float64")
        columns["sensor_signal"] = signal.where(signal > 0).to_numpy()
    frame = pd.DataFrame(columns, index=pd.DatetimeIndex(times, name="time"))
    frame = frame[frame.index.notna()].sort_index(kind="stable")
    return frame[~frame.index.duplicated(keep="first")]


def value_at(series: pd.Series, times: pd.DatetimeIndex, tolerance: pd.Timedelta) -> np.ndarray:
    """``series`` at each of ``times``: the nearest observation within ``tolerance``, else NaN."""
    right = pd.DataFrame({"at": series.index, "value": series.to_numpy()})
    left = pd.DataFrame({"at": times})
    found = pd.merge_asof(left, right, on="at", direction="nearest", tolerance=tolerance)
    return found["value"].to_numpy(dtype=np.float64)


# --- request-time features ---------------------------------------------------------------


def prediction_time(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """The prediction time is the request's ``time`` (UTC): "what will glucose be 30 min after it"."""
    return np.asarray(columns["time"]).astype("datetime64[ns]")


def reading_context(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The patient key and the time of day (device clock, stored as UTC) of the prediction."""
    time = np.asarray(columns["time"]).astype("datetime64[ns]")
    hours = time.astype("datetime64[h]").astype(np.int64)  # floor, also before 1970
    return {
        "patient_id": np.full(len(time), PATIENT_ID, dtype=object),
        "hour_of_day": hours % 24,
        "day_of_week": (hours // 24 + 3) % 7,  # 1970-01-01 was a Thursday; Monday = 0
    }


# --- derived features --------------------------------------------------------------------


def linear_extrapolation(columns: Mapping[str, np.ndarray], horizon_minutes: int = 30) -> np.ndarray:
    """The latest reading plus the last 15 minutes' rate of change carried ``horizon_minutes`` on."""
    return columns["latest_glucose"] + columns["glucose_change_15m"] * (horizon_minutes / 15)


def glucose_acceleration(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Change over the last 15 minutes minus the change over the 15 minutes before (mg/dL)."""
    recent = columns["glucose_change_15m"]
    return recent - (columns["glucose_change_30m"] - recent)


def glucose_per_signal(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Reported glucose per unit of sensor signal (the sensor's current calibration factor)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return columns["latest_glucose"] / columns["latest_sensor_signal"]


# --- source tables -----------------------------------------------------------------------


def recent_readings(
    tables: Mapping[str, pd.DataFrame],
    lags_minutes: list[int],
    windows_minutes: list[int],
    tolerance_minutes: float = 2,
) -> pd.DataFrame:
    """Per reading at ``T``: the reading, its changes over ``lags_minutes`` and trailing
    statistics over ``windows_minutes``, all from readings at or before ``T``; stamped ``T``.

    ``glucose_change_{k}m`` = glucose at ``T`` minus the reading nearest ``T - k`` within
    ``tolerance_minutes`` (missing when there is none: after a gap). Windows are
    ``(T - w, T]``; ``readings_{w}`` counts the readings in them (12 an hour when the sensor
    runs without gaps). The standard deviation needs three readings.
    """
    if min(lags_minutes) <= tolerance_minutes:
        raise ValueError("every lag must exceed the tolerance, or a lag could pick the reading itself")
    series = readings_series(tables["readings"])
    times = pd.DatetimeIndex(series.index)
    tolerance = pd.Timedelta(minutes=tolerance_minutes)
    out: dict[str, object] = {
        "patient_id": np.full(len(series), PATIENT_ID, dtype=object),
        "event_timestamp": times,
        "latest_glucose": series["glucose"].to_numpy(),
        "latest_sensor_signal": series["sensor_signal"].to_numpy(),
    }
    for lag in lags_minutes:
        before = times - pd.Timedelta(minutes=lag)
        out[f"glucose_change_{lag}m"] = series["glucose"].to_numpy() - value_at(series["glucose"], before, tolerance)
    signal = series["sensor_signal"].dropna()
    out["sensor_signal_change_15m"] = series["sensor_signal"].to_numpy() - value_at(
        signal, times - pd.Timedelta(minutes=15), tolerance
    )
    for window in windows_minutes:
        name = window_name(window)
        span = pd.Timedelta(minutes=window)
        rolling = series["glucose"].rolling(span)  # (T - w, T]
        out[f"glucose_mean_{name}"] = rolling.mean().to_numpy()
        out[f"glucose_std_{name}"] = series["glucose"].rolling(span, min_periods=3).std().to_numpy()
        out[f"glucose_min_{name}"] = rolling.min().to_numpy()
        out[f"glucose_max_{name}"] = rolling.max().to_numpy()
        out[f"readings_{name}"] = rolling.count().to_numpy().astype(np.int64)
    return pd.DataFrame(out).reset_index(drop=True)


def daily_profile(
    tables: Mapping[str, pd.DataFrame], low: float = 70, high: float = 180, gap_minutes: int = 120
) -> pd.DataFrame:
    """Per reading at ``T``: the last 24 hours ``(T - 24h, T]`` and the sensor session's age.

    Time below ``low`` / above ``high`` mg/dL is the share of readings in the window. A gap of
    more than ``gap_minutes`` between readings (in this data mostly a sensor change) starts a
    new session: ``hours_since_gap`` is the time since its first reading.
    """
    series = readings_series(tables["readings"])
    times = pd.DatetimeIndex(series.index)
    glucose = series["glucose"]
    day = pd.Timedelta(hours=24)
    gap = np.r_[True, np.diff(times.asi8) > pd.Timedelta(minutes=gap_minutes).value]
    session_start = pd.Series(np.where(gap, times.asi8, np.nan)).ffill().to_numpy()
    return pd.DataFrame(
        {
            "patient_id": np.full(len(series), PATIENT_ID, dtype=object),
            "event_timestamp": times,
            "glucose_mean_24h": glucose.rolling(day).mean().to_numpy(),
            "glucose_std_24h": glucose.rolling(day, min_periods=3).std().to_numpy(),
            "share_low_24h": (glucose < low).astype(np.float64).rolling(day).mean().to_numpy(),
            "share_high_24h": (glucose > high).astype(np.float64).rolling(day).mean().to_numpy(),
            "readings_24h": glucose.rolling(day).count().to_numpy().astype(np.int64),
            "hours_since_gap": (times.asi8 - session_start) / 3.6e12,
        }
    ).reset_index(drop=True)


def window_name(minutes: int) -> str:
    """``30m``, ``1h``, ``3h``: how a window appears in feature names."""
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


# --- label and baseline ------------------------------------------------------------------


def glucose_in_30_min(
    tables: Mapping[str, pd.DataFrame], horizon_minutes: int = 30, tolerance_minutes: float = 2
) -> pd.DataFrame:
    """The label of the prediction at each reading's ``time``: the reading nearest
    ``time + horizon_minutes`` within ``tolerance_minutes`` (missing when the sensor was off).

    ``label_time`` is the time of that reading: the label is known once it is taken. The
    tolerance is below half the usual 5-minute interval; of two readings equally near, the
    earlier counts. One row per distinct reading time (the ids are unique).
    """
    if tolerance_minutes >= horizon_minutes:
        raise ValueError("the tolerance must be below the horizon, or a label could be the reading itself")
    series = readings_series(tables["readings"])
    times = pd.DatetimeIndex(series.index)
    target = times + pd.Timedelta(minutes=horizon_minutes)
    right = pd.DataFrame({"at": times, "label": series["glucose"].to_numpy(), "label_time": times})
    found = pd.merge_asof(
        pd.DataFrame({"at": target}),
        right,
        on="at",
        direction="nearest",
        tolerance=pd.Timedelta(minutes=tolerance_minutes),
    )
    return pd.DataFrame(
        {
            "time": times,
            "label": found["label"].to_numpy(dtype=np.float64),
            "label_time": pd.DatetimeIndex(found["label_time"]),
        }
    ).reset_index(drop=True)


def persistence(frame: pd.DataFrame) -> np.ndarray:
    """Baseline: glucose in 30 minutes = the latest reading (the 24 h mean when there is none)."""
    latest = frame["latest_glucose"].to_numpy(dtype=np.float64)
    fallback = frame["glucose_mean_24h"].to_numpy(dtype=np.float64)
    return np.where(np.isnan(latest), fallback, latest)
