"""Ingest: an export in, the store's state out (see :mod:`timing.ingest.load`)."""

from timing.core.errors import ExportError
from timing.ingest.load import ingest
from timing.ingest.report import IngestReport, TableReport

__all__ = ["ExportError", "IngestReport", "TableReport", "ingest"]
