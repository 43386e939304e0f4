"""DuckDB SQL in, Spark SQL out: the translation layer that lets one definition serve both engines.

The shared statements (:func:`timing.store.asof.view_sql`, :func:`timing.features.open_contracts.features_sql`
and the rule expressions of :mod:`timing.ingest.load`) are written once, in DuckDB's
dialect. SQLGlot translates them; this module adds what SQLGlot leaves out or
maps to a function that means something else in Spark.

Notes
-----
Each rule below keeps DuckDB's meaning, assuming the Spark session's time zone
is UTC (``spark.sql.session.timeZone=UTC``; DuckDB's store connections set
``TimeZone = 'UTC'`` too):

- ``epoch(ts)`` is fractional seconds in DuckDB; SQLGlot's ``unix_timestamp``
  drops the fraction, so it becomes ``unix_micros(ts) / 1e6``; ``epoch_us``
  becomes ``unix_micros`` (SQLGlot maps ``make_timestamp(us)`` itself).
- ``datediff('day', a, b)`` counts midnights crossed in DuckDB; Spark's
  three-argument ``datediff`` counts whole 24-hour spans between timestamps,
  so both sides are cast to DATE first (a no-op for dates).
- ``arg_max(x, t)`` / ``arg_min`` skip rows where ``x`` is NULL in DuckDB;
  Spark's ``max_by`` / ``min_by`` do not, so ``t`` is blanked on those rows.
- ``regexp_full_match(x, p)`` becomes ``x RLIKE '\\A(?:p)\\z'`` (Java's ``$``
  would also match before a final line break).
- ``try_strptime(x, fmt)`` becomes ``try_to_timestamp`` with the Java pattern
  of the formats in :data:`STRPTIME_FORMATS`; others are refused.
- ``isfinite(x)`` becomes ``NOT isnan(x) AND abs(x) < 'Infinity'``.
- DuckDB's naive ``TIMESTAMP`` becomes Spark's ``TIMESTAMP`` (not
  ``TIMESTAMP_NTZ``): with a UTC session both hold the same wall-clock time,
  and every timestamp on the Spark side is then of one type.
- A qualified table ``a.b.name`` becomes the temporary view ``a_b_name``:
  Spark's temporary views have one-part names.

Anything else is SQLGlot's own translation; ``tests/test_spark.py`` checks the
results against DuckDB's.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

#: DuckDB strptime formats the translation knows, with their Java (Spark) patterns.
STRPTIME_FORMATS: dict[str, str] = {
    "%Y-%m-%dT%H:%M:%SZ": "yyyy-MM-dd'T'HH:mm:ss'Z'",
    "%Y-%m-%d %H:%M:%S": "yyyy-MM-dd HH:mm:ss",
    "%Y-%m-%d": "yyyy-MM-dd",
}


class TranslationError(ValueError):
    """A DuckDB construct this layer cannot translate faithfully."""


def view_name(table: exp.Table) -> str:
    """The one-part temporary view name standing for a (possibly qualified) table."""
    parts = [p.name for p in (table.args.get("catalog"), table.args.get("db")) if p is not None]
    return "_".join([*parts, table.name])


def _as_date(e: exp.Expr) -> exp.Expr:
    return exp.Cast(this=e, to=exp.DataType.build("DATE"))


def _blank_when_null(value: exp.Expr, order: exp.Expr) -> exp.Expr:
    return exp.If(this=exp.Is(this=value.copy(), expression=exp.Null()), true=exp.Null(), false=order)


def _rewrite(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.Table) and (node.args.get("db") or node.args.get("catalog")):
        alias = node.args.get("alias")
        new = exp.Table(this=exp.to_identifier(view_name(node)))
        if alias is not None:
            new.set("alias", alias)
        return new
    if isinstance(node, exp.TimeToUnix):  # DuckDB epoch(): seconds with their fraction
        micros = exp.Anonymous(this="UNIX_MICROS", expressions=[node.this])
        return exp.Paren(this=exp.Div(this=micros, expression=exp.Literal.number("1e6")))
    if isinstance(node, exp.DateDiff):
        unit = node.args.get("unit")
        if unit is None or unit.name.lower() not in ("day", "days", "d"):
            raise TranslationError(f"datediff by {unit.name if unit else '?'} is not translated: {node.sql('duckdb')}")
        return exp.Anonymous(this="DATEDIFF", expressions=[_as_date(node.this), _as_date(node.expression)])
    if isinstance(node, (exp.ArgMax, exp.ArgMin)):
        fn = "MAX_BY" if isinstance(node, exp.ArgMax) else "MIN_BY"
        return exp.Anonymous(this=fn, expressions=[node.this, _blank_when_null(node.this, node.expression)])
    full_match = isinstance(node, exp.Anonymous) and node.name.lower() == "regexp_full_match"
    if full_match or type(node).__name__ == "RegexpFullMatch":  # a class of recent SQLGlot versions
        x, pattern = (node.expressions[0], node.expressions[1]) if full_match else (node.this, node.expression)
        if not isinstance(pattern, exp.Literal) or not pattern.is_string:
            raise TranslationError(f"regexp_full_match needs a constant pattern: {node.sql('duckdb')}")
        anchored = exp.Literal.string(r"\A(?:" + pattern.this + r")\z")
        return exp.Paren(this=exp.RegexpLike(this=x, expression=anchored))
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.TIMESTAMPNTZ:
        return exp.DataType.build("TIMESTAMPTZ")
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        args = node.expressions
        if name == "try_strptime":
            fmt = args[1].this if len(args) == 2 and isinstance(args[1], exp.Literal) else None
            if fmt not in STRPTIME_FORMATS:
                raise TranslationError(f"strptime format not translated: {node.sql('duckdb')}")
            java = exp.Literal.string(STRPTIME_FORMATS[fmt])
            return exp.Anonymous(this="TRY_TO_TIMESTAMP", expressions=[args[0], java])
        if name == "strlen":  # DuckDB's byte length
            return exp.Anonymous(this="OCTET_LENGTH", expressions=args)
        if name == "epoch_us":  # microseconds since the epoch (make_timestamp(us) maps back)
            return exp.Anonymous(this="UNIX_MICROS", expressions=args)
        if name == "isfinite":
            x = args[0]
            finite = exp.And(
                this=exp.Not(this=exp.Anonymous(this="ISNAN", expressions=[x.copy()])),
                expression=exp.LT(
                    this=exp.Abs(this=x.copy()),
                    expression=exp.Cast(this=exp.Literal.string("Infinity"), to=exp.DataType.build("DOUBLE")),
                ),
            )
            return exp.Paren(this=finite)
    return node


def to_spark(sql: str) -> str:
    """Translate one DuckDB statement or expression to Spark SQL.

    Raises
    ------
    TranslationError
        The statement uses a construct whose Spark translation would change
        its meaning (see the module notes for what is translated).
    """
    tree = sqlglot.parse_one(sql, read="duckdb")
    # children before parents (a breadth-first walk, reversed), so that a rewritten node is
    # built from rewritten arguments
    for node in reversed(list(tree.walk(bfs=True))):
        new = _rewrite(node)
        if new is not node:
            if node is tree:
                tree = new
            else:
                node.replace(new)
    return tree.sql(dialect="spark")
