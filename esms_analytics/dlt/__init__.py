"""Load eSMS history with dlt (the ``dlt`` extra): ``pipeline.run(esms_source(...))``.

>>> from esms_analytics.dlt import esms_source  # doctest: +SKIP
"""

from __future__ import annotations

from esms_analytics.dlt.source import MERGE_KEY, esms_source, resource_name, to_arrow

__all__ = ["MERGE_KEY", "esms_source", "resource_name", "to_arrow"]
