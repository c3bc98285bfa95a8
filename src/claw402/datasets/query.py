"""The query grammar: untrusted URL parameters -> a validated `Query`, or `InvalidQuery`.

This docstring is the specification; the Cloudflare Worker implements the same rules.

Parameters are (name, value) pairs, already URL-decoded, in request order. Names are
case-sensitive. A name starting with `_` is a control parameter; any other name is a filter.

Filters -- `<column>` or `<column>__<op>`; column names never start with `_` nor contain `__`
or `,` (ingest guarantees it), so the first `__` splits column from operator.

    col=v               equal                     col__ne=v        not equal; NULLs match
    col__gt=v           >         col__gte=v  >=  col__lt=v  <     col__lte=v  <=
    col__contains=s     substring, case-sensitive         (string columns only)
    col__icontains=s    substring, case-insensitive       (string columns only)
    col__startswith=s   prefix, case-sensitive            (string columns only)
    col__in=a,b,c       equal to one of 1-1000 comma-separated values (no escaping: a string
                        value containing a comma cannot be listed; an empty item is "")
    col__isnull=true    NULL (`false`: not NULL)

  Every filter ANDs with the others, repeats included (`a=1&a=2` matches nothing). Except
  for `ne` and `isnull`, a filter never matches NULL. Values must parse as the column's type:
    integer    [+-]?digits, within signed 64 bits
    number     decimal or exponent notation (`1`, `-2.5`, `1e3`), finite
    boolean    true | false | 1 | 0 (case-insensitive)
    string     any text (empty allowed)
    date       YYYY-MM-DD
    timestamp  YYYY-MM-DD (midnight), or YYYY-MM-DD[T| ]HH:MM[:SS[.f{1,6}]] with an optional
               `Z` or `+HH:MM`/`-HH:MM` offset, converted to UTC (stored timestamps are UTC or
               naive)
  Case-insensitive means both sides lowercased by Unicode simple case mapping. Strings compare
  and sort by Unicode code point, booleans as false < true.

Control parameters, each at most once:

    _sort=a,-b   order by a ascending, then b descending (each column once). NULLs sort as the
                 largest value: last ascending, first descending. Ties, and the default order,
                 follow the source row order.
    _fields=a,b  return only these columns, in this order (each once).
    _limit=n     page size, an integer >= 1; default 100; above the maximum it is clamped.
    _cursor=c    continue after the page that returned `next: c`; opaque.
    _q=text      case-insensitive substring found in any string column; empty means no search.
    _format=f    json | csv | ndjson; without it the caller's default (from Accept) or json.
    _count=exact the JSON answer adds `count`: every row matching the filters and `_q`.
    _facet=col   repeatable (each column once, at most 5): the JSON answer adds `facets`,
                 `{col: [{"value": v, "count": n}, ...]}`, the 10 most frequent values of
                 the matching rows (NULL included), most frequent first, ties by value
                 ascending (NULL last). `_count` and `_facet` need the json format.

Anything else -- an unknown column, operator or control parameter, a value of the wrong type,
a text operator on a non-string column -- is `InvalidQuery` with a sentence for a person.

Values in answers: integer and number as JSON numbers, boolean, string, date as `YYYY-MM-DD`,
timestamp as `YYYY-MM-DDTHH:MM:SS`, followed by `.ffffff` only when the microseconds are not
zero; NULL as null.

Cursors: `<payload>.<check>`; payload is base64url (no padding) of JSON `{"k": [...], "r": n}`:
the last row's sort values (dates and timestamps in their output form) and its row number.
check is base64url of the first 9 bytes of SHA-256 over the binding JSON, a `.`, and the
payload text. The binding is the compact JSON array (as JSON.stringify writes it)
`[version, _sort, _q, [[name, value], ...]]`: the filter parameters exactly as received, sorted
by name then value; `_sort` and `_q` as received, or "" when absent. A cursor
therefore only continues the same filters, sort and search on the same dataset version; `_limit`
and `_fields` may change between pages. The check detects corruption and reuse on another
query; it is not a secret MAC: a forged cursor can only select rows the caller could query anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from claw402.datasets.cursor import binding as cursor_binding
from claw402.datasets.cursor import decode_cursor
from claw402.datasets.schema import Column
from claw402.datasets.values import BOOLS, InvalidQuery, Value, convert

Format = Literal["json", "csv", "ndjson"]
FORMATS: tuple[Format, ...] = ("json", "csv", "ndjson")
OPERATORS = (
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains",
    "icontains",
    "startswith",
    "in",
    "isnull",
)
TEXT_OPERATORS = frozenset({"contains", "icontains", "startswith"})
CONTROL_PARAMS = ("_sort", "_fields", "_limit", "_cursor", "_q", "_format", "_count", "_facet")
REPEATABLE_PARAMS = ("_facet",)
MEDIA_TYPES: dict[str, Format] = {
    "application/json": "json",
    "text/csv": "csv",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
}

DEFAULT_LIMIT = 100
MAX_FILTERS = 64
MAX_IN_VALUES = 1000
MAX_VALUE_CHARS = 10_000
MAX_Q_CHARS = 500
MAX_FACETS = 5
FACET_SIZE = 10


@dataclass(frozen=True)
class Filter:
    column: str
    op: str
    value: Value | tuple[Value, ...] | None  # a tuple for `in`, a bool for `isnull`


@dataclass(frozen=True)
class Sort:
    column: str
    descending: bool = False


@dataclass(frozen=True)
class After:
    """A decoded cursor: the last row's sort values and row number."""

    values: tuple[Value | None, ...]
    rowid: int


@dataclass(frozen=True)
class Query:
    filters: tuple[Filter, ...] = ()
    sort: tuple[Sort, ...] = ()
    fields: tuple[str, ...] | None = None
    limit: int = DEFAULT_LIMIT
    q: str | None = None
    format: Format = "json"
    after: After | None = None
    version: str = ""
    binding: str = '["","","",[]]'  # see the module docstring; keys the cursor check
    count: bool = False  # `_count=exact`
    facets: tuple[str, ...] = ()  # `_facet=col`, in request order


def parse_query(
    params: Sequence[tuple[str, str]],
    columns: Sequence[Column],
    *,
    max_limit: int,
    default_limit: int = DEFAULT_LIMIT,
    version: str = "",
    default_format: Format | None = None,
) -> Query:
    """Validate request parameters against a dataset's columns; raise only `InvalidQuery`."""
    by_name = {c.name: c for c in columns}
    control: dict[str, str] = {}
    filters: list[Filter] = []
    filter_pairs: list[tuple[str, str]] = []
    facet_names: list[str] = []
    for name, raw in params:
        if not isinstance(name, str) or not isinstance(raw, str):
            raise InvalidQuery("parameter names and values must be text")
        _check_text(name, "a parameter name")
        _check_text(raw, f"the value of {name!r}")
        if name.startswith("_"):
            if name not in CONTROL_PARAMS:
                raise InvalidQuery(
                    f"unknown parameter {name!r}; control parameters are "
                    + ", ".join(CONTROL_PARAMS)
                )
            if name in REPEATABLE_PARAMS:
                facet_names.append(raw)
                continue
            if name in control:
                raise InvalidQuery(f"{name} given more than once")
            control[name] = raw
            continue
        if len(filters) >= MAX_FILTERS:
            raise InvalidQuery(f"too many filters: at most {MAX_FILTERS}")
        filters.append(_parse_filter(name, raw, by_name))
        filter_pairs.append((name, raw))

    sort = _parse_sort(control.get("_sort"), by_name)
    fields = _parse_fields(control.get("_fields"), by_name)
    limit = _parse_limit(control.get("_limit"), max_limit, default_limit)
    q = control.get("_q") or None
    if q is not None:
        if len(q) > MAX_Q_CHARS:
            raise InvalidQuery(f"_q is too long: at most {MAX_Q_CHARS} characters")
        if not any(c.type == "string" for c in columns):
            raise InvalidQuery("_q needs a string column to search, and this dataset has none")
    fmt = control.get("_format", default_format or "json")
    if fmt not in FORMATS:
        raise InvalidQuery(f"unknown _format {fmt!r}; use one of {', '.join(FORMATS)}")
    binding = cursor_binding(version, control.get("_sort", ""), q or "", filter_pairs)
    after = None
    if "_cursor" in control:
        sorted_by = [by_name[k.column] for k in sort]
        after = After(*decode_cursor(control["_cursor"], binding, sorted_by))
    count, facets = _parse_count(control.get("_count")), _parse_facets(facet_names, by_name)
    if (count or facets) and fmt != "json":
        raise InvalidQuery(f"_count and _facet need the json format, not {fmt}")
    return Query(
        filters=tuple(filters),
        sort=sort,
        fields=fields,
        limit=limit,
        q=q,
        format=fmt,  # type: ignore[arg-type]
        after=after,
        version=version,
        binding=binding,
        count=count,
        facets=facets,
    )


def accept_weights(accept: str) -> list[tuple[str, float]]:
    """An Accept header's media types, lowercased, with their q weights, in the order given
    (an unreadable q counts as 0: not acceptable)."""
    found = []
    for part in accept.split(","):
        media, *options = (p.strip() for p in part.split(";"))
        weight = 1.0
        for option in options:
            key, _, value = option.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        found.append((media.lower(), weight))
    return found


def format_from_accept(accept: str | None) -> Format | None:
    """The format an Accept header asks for; None when it names none we serve (caller: 406).

    An absent or empty header, `*/*` and `application/*` mean json. The highest q wins; ties go
    to the first listed.
    """
    if not accept or not accept.strip():
        return "json"
    best: tuple[float, int, Format] | None = None
    for index, (media, weight) in enumerate(accept_weights(accept)):
        fmt = MEDIA_TYPES.get(media) or ("json" if media in ("*/*", "application/*") else None)
        if fmt is None or not weight > 0:
            continue
        if best is None or weight > best[0]:
            best = (weight, index, fmt)
    return best[2] if best else None


def _check_text(text: str, what: str) -> None:
    if len(text) > MAX_VALUE_CHARS:
        raise InvalidQuery(f"{what} is too long: at most {MAX_VALUE_CHARS} characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidQuery(f"{what} is not valid UTF-8 text") from None


def _parse_filter(name: str, raw: str, by_name: dict[str, Column]) -> Filter:
    column_name, sep, op = name.partition("__")
    if not sep:
        op = "eq"
    elif op not in OPERATORS or op == "eq":
        raise InvalidQuery(
            f"unknown operator {op!r} in {name!r}; use one of "
            + ", ".join(o for o in OPERATORS if o != "eq")
        )
    column = by_name.get(column_name)
    if column is None:
        raise InvalidQuery(f"unknown column {column_name!r}; columns are {_names(by_name)}")
    if op in TEXT_OPERATORS and column.type != "string":
        raise InvalidQuery(f"__{op} works on string columns only; {column_name!r} is {column.type}")
    if op == "isnull":
        flag = BOOLS.get(raw.lower())
        if flag is None:
            raise InvalidQuery(f"{name} takes true or false, not {raw[:50]!r}")
        return Filter(column_name, op, flag)
    if op == "in":
        items = raw.split(",")
        if len(items) > MAX_IN_VALUES:
            raise InvalidQuery(f"{name} lists too many values: at most {MAX_IN_VALUES}")
        return Filter(column_name, op, tuple(convert(item, column) for item in items))
    return Filter(column_name, op, convert(raw, column))


def _parse_sort(raw: str | None, by_name: dict[str, Column]) -> tuple[Sort, ...]:
    if raw is None:
        return ()
    keys: list[Sort] = []
    for item in raw.split(","):
        name = item[1:] if item.startswith("-") else item
        if name not in by_name:
            raise InvalidQuery(
                f"_sort: unknown column {name!r}; write _sort=col or _sort=-col with columns "
                f"from {_names(by_name)}"
            )
        if any(k.column == name for k in keys):
            raise InvalidQuery(f"_sort lists {name!r} twice")
        keys.append(Sort(name, item.startswith("-")))
    return tuple(keys)


def _parse_fields(raw: str | None, by_name: dict[str, Column]) -> tuple[str, ...] | None:
    if raw is None:
        return None
    fields = raw.split(",")
    for name in fields:
        if name not in by_name:
            raise InvalidQuery(f"_fields: unknown column {name!r}; columns are {_names(by_name)}")
    if len(set(fields)) != len(fields):
        raise InvalidQuery("_fields lists a column twice")
    return tuple(fields)


def _parse_limit(raw: str | None, max_limit: int, default_limit: int) -> int:
    if raw is None:
        return max(1, min(default_limit, max_limit))
    digits = raw.lstrip("0") or "0"
    if not digits.isascii() or not digits.isdigit():
        raise InvalidQuery(f"_limit must be a whole number from 1 to {max_limit}, not {raw[:50]!r}")
    if len(digits) > 12:
        return max_limit
    limit = int(digits)
    if limit < 1:
        raise InvalidQuery(f"_limit must be at least 1, not {raw[:50]!r}")
    return min(limit, max_limit)


def _parse_count(raw: str | None) -> bool:
    if raw is not None and raw != "exact":
        raise InvalidQuery(f"_count takes exact, not {raw[:50]!r}")
    return raw is not None


def _parse_facets(names: list[str], by_name: dict[str, Column]) -> tuple[str, ...]:
    if len(names) > MAX_FACETS:
        raise InvalidQuery(f"too many _facet: at most {MAX_FACETS}")
    for name in names:
        if name not in by_name:
            raise InvalidQuery(f"_facet: unknown column {name!r}; columns are {_names(by_name)}")
    if len(set(names)) != len(names):
        raise InvalidQuery("_facet lists a column twice")
    return tuple(names)


def _names(by_name: dict[str, Column]) -> str:
    names = list(by_name)
    shown = ", ".join(names[:20])
    return shown + (f" and {len(names) - 20} more" if len(names) > 20 else "")
