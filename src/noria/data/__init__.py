"""Data: ingest raw sources, validate them, quarantine bad rows, version snapshots with DVC.

Public entry points: :func:`noria.data.ingest.ingest`, :func:`noria.data.snapshots.open_snapshot`,
:func:`noria.data.snapshots.list_snapshots`.
"""
