"""`_count=exact` and `_facet=col`: what the matching rows hold, beside the page that shows them.

Counted over the filters and `_q` only (the cursor, sort and page size ignored), in the same
call as the page, so a paying caller learns the total and the spread of a column for one
price. The tenant Worker's `engine.js` computes the same numbers in the same order.
"""

from __future__ import annotations

from typing import Any

from claw402.datasets.engine import Dataset
from claw402.datasets.query import FACET_SIZE, Query
from claw402.datasets.schema import sql_ident
from claw402.datasets.sql import candidate_rows, select_list, where_clause


def facet_sql(table: str, column: str, types: dict[str, str], where: str) -> str:
    """The `FACET_SIZE` most frequent values of `column`, ties by value (NULL last)."""
    col = sql_ident(column)
    return (
        # No alias: a column may be called anything, `n` included.
        f"SELECT {select_list([column], types)}, count(*) FROM {table}"
        f"{' WHERE ' + where if where else ''} GROUP BY {col} "
        f"ORDER BY count(*) DESC, {col} ASC NULLS LAST LIMIT {FACET_SIZE}"
    )


def summary(dataset: Dataset, query: Query, timeout_ms: int | None = None) -> dict[str, Any]:
    """`{"count": n}` and/or `{"facets": {...}}` for a query that asks for them, else `{}`."""
    extras: dict[str, Any] = {}
    if query.count:
        extras["count"] = dataset.count(query, timeout_ms=timeout_ms)
    if query.facets:
        extras["facets"] = facets(dataset, query, timeout_ms)
    return extras


def facets(
    dataset: Dataset, query: Query, timeout_ms: int | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Each `_facet` column's top values over the rows matching `query`."""
    # The dataset's own parts (its engine, table and search files), as `Dataset.count` uses.
    types = {c.name: c.type for c in dataset.columns}
    where, params = where_clause(query, types, dataset.columns)
    table = dataset._table
    candidates = dataset._candidates(query)
    if candidates == []:
        return {name: [] for name in query.facets}
    if candidates is not None:
        table, relation_params = candidate_rows(table, candidates)
        params = [*relation_params, *params]
    found: dict[str, list[dict[str, Any]]] = {}
    for name in query.facets:
        rows = dataset._engine._run(
            dataset.path, facet_sql(table, name, types, where), params, timeout_ms
        )
        found[name] = [{"value": value, "count": int(n)} for value, n in rows]  # type: ignore[call-overload]
    return found
