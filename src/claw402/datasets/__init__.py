"""Datasets: ingest a file into a versioned columnar store, query it with a URL grammar.

Pure: knows nothing of tenants, HTTP frameworks or payments.

    result = ingest(Path("data.csv"), version_dir, key="id")
    engine = Engine()                       # one per process
    dataset = engine.open(result.path, result.columns, key=result.key, version="v3")
    query = parse_query(request_params, result.columns, max_limit=1000, version="v3")
    body, media_type = render(dataset.records(query, timeout_ms=2000), query.format)
"""

from claw402.datasets.docs_page import docs_html
from claw402.datasets.engine import Dataset, Engine, Page, QueryTimeout, open_dataset
from claw402.datasets.ingest import IngestError, IngestResult, ingest
from claw402.datasets.openapi import openapi, schema_document
from claw402.datasets.output import render
from claw402.datasets.query import InvalidQuery, Query, format_from_accept, parse_query
from claw402.datasets.schema import Column

__all__ = [
    "Column",
    "Dataset",
    "Engine",
    "IngestError",
    "IngestResult",
    "InvalidQuery",
    "Page",
    "Query",
    "QueryTimeout",
    "docs_html",
    "format_from_accept",
    "ingest",
    "open_dataset",
    "openapi",
    "parse_query",
    "render",
    "schema_document",
]
