"""The analyses' file writers, now in :mod:`conceptkit.artefacts` (one module for the files of a
run folder); these names stay importable from here for :mod:`conceptkit.beyond.chance`."""

from __future__ import annotations

from conceptkit.artefacts import Writer, csv_writer, json_writer, npz_writer, number, save_all

__all__ = ["Writer", "csv_writer", "json_writer", "npz_writer", "number", "save_all"]
