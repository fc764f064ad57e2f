"""A subset of the Azure Digital Twins query language, evaluated over the twin graph.

Grammar (Learn: concepts-query-language, how-to-query-graph, reference-query-clause-select/-from/-join/-where,
reference-query-operators, reference-query-functions, reference-query-reserved)::

    SELECT [TOP(n)] ( * | COUNT() | item [AS name] {, item [AS name]} )
    FROM ( DIGITALTWINS | RELATIONSHIPS ) [alias]
    { JOIN alias RELATED alias.relationshipName [relationshipAlias] }        -- at most 5
    [ WHERE condition ]

Conditions: ``= != < <= > >=``, ``IN [...]``/``NIN [...]``, ``AND``/``OR``/``NOT``, parentheses and the functions
IS_OF_MODEL (1-3 arguments), IS_DEFINED, IS_NULL, IS_BOOL, IS_NUMBER, IS_STRING, IS_OBJECT, IS_PRIMITIVE,
STARTSWITH, ENDSWITH, CONTAINS. Strings are single- or double-quoted; Learn's concepts-query-language documents
``\\'``, and the escapes are those of the Cosmos DB SQL dialect the language comes from (cosmos-db/nosql/query/
constants), exactly: ``\\' \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX``, any other is a syntax error. ``[[name]]`` quotes
a reserved word. Keywords are case-insensitive, names and values case-sensitive ("All Azure Digital Twins query
operations are case-sensitive"). The tokens are read by shared.filters.lexer, which the route filters and IoT Hub
routing queries share; syntax errors name the position where the offending token starts.

Semantics where Learn is explicit: a JOIN is an inner join and needs the query to name a twin by ``$dtId``
(reference-query-clause-join); a projected property a row lacks is left out of that row (reference-query-clause-
select); IS_OF_MODEL without ``exact`` matches the model, later versions of it and models that extend it
(reference-query-functions). Where Learn is silent the rules of the Cosmos DB SQL dialect ADT's language comes
from apply: comparing values of different types, or an undefined value, is *undefined*, which WHERE treats as false
and NOT keeps undefined.

Limits (Learn reference-service-limits, "Query"): 8,000 characters, 50 AND/OR, 50 values in IN, 5 JOINs; each
refused with 400 SqlQueryError.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from shared.adapters.twins.embedded.dtdl import Registry
from shared.adapters.twins.embedded.errors import AdtError, bad_request
from shared.filters.lexer import Lexicon, QuerySyntaxError, Token, TokenCursor, ordered, tokenize

MAX_QUERY_CHARS: Final = 8_000
MAX_AND_OR: Final = 50
MAX_IN_VALUES: Final = 50
MAX_JOINS: Final = 5

# Learn reference-query-reserved, its list verbatim: names that must be written [[name]] as identifiers.
_RESERVED_TEXT: Final = (
    "ALL AND AS ASC AVG BY COUNT DESC DEVICES_JOBS DEVICES_MODULES DEVICES ENDS_WITH FALSE FROM GROUP IN IS_BOOL "
    "IS_DEFINED IS_NULL IS_NUMBER IS_OBJECT IS_PRIMITIVE IS_STRING MAX MIN NOT NOT_IN NULL OR ORDER SELECT "
    "STARTS_WITH SUM TOP TRUE WHERE IS_OF_MODEL")
RESERVED: Final = frozenset(_RESERVED_TEXT.split())
_FUNCTIONS: Final = ("IS_OF_MODEL", "IS_DEFINED", "IS_NULL", "IS_BOOL", "IS_NUMBER", "IS_STRING", "IS_OBJECT",
                     "IS_PRIMITIVE", "STARTSWITH", "ENDSWITH", "CONTAINS")


def query_error(message: str) -> AdtError:
    return bad_request("SqlQueryError", message)


class _Undefined:
    __slots__ = ()

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED: Final = _Undefined()


# ---- lexer: shared.filters.lexer, told what is the ADT language's own ---------------------------------------------
def _quoted_name(text: str, i: int) -> Token | None:
    """``[[name]]``: a reserved word (or any text) used as a name (reference-query-reserved)."""
    if not text.startswith("[[", i):
        return None
    end = text.find("]]", i + 2)
    if end < 0:
        raise QuerySyntaxError("unterminated [[name]]", i, text)
    return Token("QNAME", text[i + 2:end], i, end + 2)


# kinds: NAME QNAME STR NUM OP EOF and the punctuation ( ) , [ ] . *; there is no arithmetic, so a number literal
# carries its minus sign; names start with "@" too (query parameters, refused by the parser); Learn documents no
# hexadecimal literals, so 0x… is refused rather than read as a number the service might not accept.
_LEXICON: Final = Lexicon(punct="(),[].*", ops=("<=", ">=", "!=", "<>", "=", "<", ">"), name_chars="_$",
                          name_starts="@", signs="-", hex_numbers=False, special=_quoted_name)


# ---- syntax tree -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Ref:
    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Const:
    value: Any


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True, slots=True)
class InList:
    operand: Any
    values: tuple[Any, ...]
    negate: bool


@dataclass(frozen=True, slots=True)
class Func:
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # AND OR
    items: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Any


@dataclass(frozen=True, slots=True)
class Join:
    alias: str
    source_alias: str
    relationship_name: str
    relationship_alias: str | None


@dataclass(frozen=True, slots=True)
class SelectItem:
    path: tuple[str, ...]
    name: str | None


@dataclass(frozen=True, slots=True)
class Query:
    kind: str  # star count items
    items: tuple[SelectItem, ...]
    top: int | None
    collection: str  # DIGITALTWINS RELATIONSHIPS
    alias: str | None
    joins: tuple[Join, ...]
    where: Any


class _Parser(TokenCursor):
    def __init__(self, text: str) -> None:
        super().__init__(text, tokenize(text, _LEXICON))
        self.and_or = 0

    # -- token helpers --
    @property
    def tok(self) -> Token:
        return self.peek()

    def _keyword(self, word: str) -> bool:
        tok = self.tok
        return tok.kind == "NAME" and str(tok.value).upper() == word

    def accept_keyword(self, word: str) -> bool:
        if self._keyword(word):
            self.take()
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.accept_keyword(word):
            raise query_error(f"expected {word} at position {self.tok.pos}, found {self._describe()}")

    def accept_punct(self, char: str) -> bool:
        if self.tok.kind == char:
            self.take()
            return True
        return False

    def expect_punct(self, char: str) -> None:
        if not self.accept_punct(char):
            raise query_error(f"expected {char!r} at position {self.tok.pos}, found {self._describe()}")

    def _describe(self) -> str:
        return "the end of the query" if self.tok.kind == "EOF" else repr(self.tok.value)

    def name(self, what: str) -> str:
        tok = self.tok
        if tok.kind == "QNAME":
            self.take()
            return str(tok.value)
        if tok.kind == "NAME":
            if str(tok.value).upper() in RESERVED:
                raise query_error(f"{tok.value!r} at position {tok.pos} is a reserved word: write [[{tok.value}]]")
            self.take()
            return str(tok.value)
        raise query_error(f"expected {what} at position {tok.pos}, found {self._describe()}")

    def path(self) -> tuple[str, ...]:
        parts = [self.name("a name")]
        while self.accept_punct("."):
            parts.append(self.name("a property name"))
        return tuple(parts)

    # -- clauses --
    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        top: int | None = None
        if self.accept_keyword("TOP"):
            self.expect_punct("(")
            tok = self.tok
            if tok.kind != "NUM" or not isinstance(tok.value, int) or tok.value < 1:
                raise query_error(f"TOP needs a positive integer at position {tok.pos}")
            top = tok.value
            self.take()
            self.expect_punct(")")
        kind, items = "items", []
        if self.accept_punct("*"):
            kind = "star"
        elif self._keyword("COUNT"):
            self.take()
            self.expect_punct("(")
            self.expect_punct(")")
            kind = "count"
        elif top is not None and self._keyword("FROM"):
            kind = "star"  # Learn's own TOP example omits the projection: "SELECT TOP(5) FROM DIGITALTWINS"
        else:
            while True:
                path = self.path()
                alias = self.name("a result name") if self.accept_keyword("AS") else None
                items.append(SelectItem(path, alias))
                if not self.accept_punct(","):
                    break
        self.expect_keyword("FROM")
        if self.accept_keyword("DIGITALTWINS"):
            collection = "DIGITALTWINS"
        elif self.accept_keyword("RELATIONSHIPS"):
            collection = "RELATIONSHIPS"
        else:
            raise query_error(f"FROM takes DIGITALTWINS or RELATIONSHIPS (position {self.tok.pos})")
        alias = None
        if self.tok.kind in ("NAME", "QNAME") and not any(self._keyword(k) for k in ("JOIN", "WHERE")):
            self.accept_keyword("AS")
            alias = self.name("a collection name")
        joins: list[Join] = []
        while self.accept_keyword("JOIN"):
            if collection != "DIGITALTWINS":
                raise query_error("JOIN is only supported FROM DIGITALTWINS")
            target = self.name("a collection name")
            self.expect_keyword("RELATED")
            source_path = self.path()
            if len(source_path) != 2:
                raise query_error("RELATED takes <collection>.<relationship name>")
            rel_alias = None
            if self.tok.kind in ("NAME", "QNAME") and not any(self._keyword(k) for k in ("JOIN", "WHERE")):
                rel_alias = self.name("a relationship collection name")
            joins.append(Join(target, source_path[0], source_path[1], rel_alias))
        if len(joins) > MAX_JOINS:
            raise query_error(f"at most {MAX_JOINS} JOINs are supported in a query")
        where = None
        if self.accept_keyword("WHERE"):
            where = self.or_expr()
        if self.tok.kind != "EOF":
            raise query_error(f"unexpected {self._describe()} at position {self.tok.pos}")
        if self.and_or > MAX_AND_OR:
            raise query_error(f"the query has {self.and_or} AND/OR operators; at most {MAX_AND_OR} are allowed")
        return Query(kind, tuple(items), top, collection, alias, tuple(joins), where)

    # -- conditions --
    def or_expr(self) -> Any:
        items = [self.and_expr()]
        while self.accept_keyword("OR"):
            self.and_or += 1
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else BoolOp("OR", tuple(items))

    def and_expr(self) -> Any:
        items = [self.not_expr()]
        while self.accept_keyword("AND"):
            self.and_or += 1
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else BoolOp("AND", tuple(items))

    def not_expr(self) -> Any:
        if self.accept_keyword("NOT"):
            return Not(self.not_expr())
        return self.predicate()

    def predicate(self) -> Any:
        if self.accept_punct("("):
            inner = self.or_expr()
            self.expect_punct(")")
            return inner
        left = self.operand()
        if self.tok.kind == "OP":
            op = str(self.tok.value)
            self.take()
            return Compare(op, left, self.operand())
        if self.accept_keyword("NIN"):
            return self._in_list(left, True)
        if self._keyword("NOT") and self._next_is_keyword("IN"):
            self.i += 2
            return self._in_list(left, True)
        if self.accept_keyword("IN"):
            return self._in_list(left, False)
        if isinstance(left, Func):
            return left
        if isinstance(left, Const) and isinstance(left.value, bool):
            return left
        raise query_error(f"expected a comparison at position {self.tok.pos}, found {self._describe()}")

    def _next_is_keyword(self, word: str) -> bool:
        nxt = self.toks[self.i + 1] if self.i + 1 < len(self.toks) else None
        return nxt is not None and nxt.kind == "NAME" and str(nxt.value).upper() == word

    def _in_list(self, operand: Any, negate: bool) -> InList:
        self.expect_punct("[")
        values: list[Any] = []
        if not self.accept_punct("]"):
            while True:
                values.append(self.literal())
                if self.accept_punct("]"):
                    break
                self.expect_punct(",")
        if len(values) > MAX_IN_VALUES:
            raise query_error(f"IN has {len(values)} values; at most {MAX_IN_VALUES} are allowed")
        return InList(operand, tuple(values), negate)

    def literal(self) -> Any:
        tok = self.tok
        if tok.kind in ("STR", "NUM"):
            self.take()
            return tok.value
        if tok.kind == "NAME" and str(tok.value).upper() in ("TRUE", "FALSE", "NULL"):
            self.take()
            return {"TRUE": True, "FALSE": False, "NULL": None}[str(tok.value).upper()]
        raise query_error(f"expected a literal at position {tok.pos}, found {self._describe()}")

    def operand(self) -> Any:
        tok = self.tok
        if tok.kind in ("STR", "NUM") or (
                tok.kind == "NAME" and str(tok.value).upper() in ("TRUE", "FALSE", "NULL")):
            return Const(self.literal())
        if tok.kind == "NAME" and str(tok.value).upper() in _FUNCTIONS and self.toks[self.i + 1].kind == "(":
            return self.function()
        if tok.kind == "NAME" and str(tok.value).startswith("@"):
            raise query_error(f"query parameters ({tok.value}) are not supported")
        return Ref(self.path())

    def function(self) -> Func:
        name = str(self.tok.value).upper()
        self.i += 2
        args: list[Any] = []
        if not self.accept_punct(")"):
            while True:
                if name == "IS_OF_MODEL" and self._keyword("EXACT"):
                    self.take()
                    args.append(Const("exact"))
                else:
                    args.append(self.operand())
                if self.accept_punct(")"):
                    break
                self.expect_punct(",")
        arity = {"IS_OF_MODEL": (1, 3), "STARTSWITH": (2, 2), "ENDSWITH": (2, 2), "CONTAINS": (2, 2)}.get(name, (1, 1))
        if not arity[0] <= len(args) <= arity[1]:
            raise query_error(f"{name} takes {arity[0]}..{arity[1]} arguments, not {len(args)}")
        return Func(name, tuple(args))


def parse_query(text: str) -> Query:
    if not isinstance(text, str) or not text.strip():
        raise query_error("the query is empty")
    if len(text) > MAX_QUERY_CHARS:
        raise query_error(f"the query has {len(text)} characters; at most {MAX_QUERY_CHARS} are allowed")
    try:
        return _Parser(text).parse()
    except QuerySyntaxError as exc:  # the lexer's: the message names the position
        raise query_error(str(exc)) from None


# ---- evaluation --------------------------------------------------------------------------------------------------
Row = dict[str, Any]
_PRIMARY: Final = "\x00primary"  # the FROM collection when it has no alias


def _lookup(row: Row, path: tuple[str, ...], primary: str) -> Any:
    if path[0] in row and path[0] != _PRIMARY:
        value, rest = row[path[0]], path[1:]
    else:
        value, rest = row[primary], path
    for part in rest:
        if not isinstance(value, dict) or part not in value:
            return UNDEFINED
        value = value[part]
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "complex"


def _compare(op: str, left: Any, right: Any) -> bool | None:
    if left is UNDEFINED or right is UNDEFINED:
        return None
    kind = _kind(left)
    if kind != _kind(right):
        return None
    if kind == "complex":
        return (left == right) if op == "=" else (left != right) if op == "!=" else None
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if kind in ("null", "bool"):
        return None
    return ordered(op, left, right)


class _Evaluator:
    def __init__(self, query: Query, registry: Registry, primary: str, twin_aliases: set[str]) -> None:
        self.query = query
        self.registry = registry
        self.primary = primary
        self.twin_aliases = twin_aliases

    def value(self, node: Any, row: Row) -> Any:
        if isinstance(node, Const):
            return node.value
        if isinstance(node, Ref):
            return _lookup(row, node.path, self.primary)
        if isinstance(node, Func):
            result = self.truth(node, row)
            return UNDEFINED if result is None else result
        return self.truth(node, row)

    def truth(self, node: Any, row: Row) -> bool | None:
        if isinstance(node, Compare):
            return _compare(node.op, self.value(node.left, row), self.value(node.right, row))
        if isinstance(node, InList):
            value = self.value(node.operand, row)
            if value is UNDEFINED:
                return None
            found = any(_compare("=", value, v) for v in node.values)
            return not found if node.negate else found
        if isinstance(node, BoolOp):
            results = [self.truth(item, row) for item in node.items]
            if node.op == "AND":
                return False if False in results else (None if None in results else True)
            return True if True in results else (None if None in results else False)
        if isinstance(node, Not):
            inner = self.truth(node.item, row)
            return None if inner is None else not inner
        if isinstance(node, Func):
            return self.function(node, row)
        if isinstance(node, Const):
            return node.value if isinstance(node.value, bool) else None
        value = self.value(node, row)
        return value if isinstance(value, bool) else None

    def function(self, node: Func, row: Row) -> bool | None:
        name, args = node.name, node.args
        if name == "IS_OF_MODEL":
            return self.is_of_model(args, row)
        value = self.value(args[0], row)
        if name == "IS_DEFINED":
            return value is not UNDEFINED
        if value is UNDEFINED:
            return False if name.startswith("IS_") else None
        if name == "IS_NULL":
            return value is None
        if name == "IS_BOOL":
            return isinstance(value, bool)
        if name == "IS_NUMBER":
            return _kind(value) == "number"
        if name == "IS_STRING":
            return isinstance(value, str)
        if name == "IS_OBJECT":
            return isinstance(value, dict)
        if name == "IS_PRIMITIVE":
            return _kind(value) != "complex"
        other = self.value(args[1], row)
        if not isinstance(value, str) or not isinstance(other, str):
            return None
        if name == "STARTSWITH":
            return value.startswith(other)
        if name == "ENDSWITH":
            return value.endswith(other)
        return other in value  # CONTAINS

    def is_of_model(self, args: tuple[Any, ...], row: Row) -> bool | None:
        alias = self.primary
        rest = list(args)
        if isinstance(rest[0], Ref):
            if len(rest[0].path) != 1 or rest[0].path[0] not in self.twin_aliases:
                raise query_error(f"IS_OF_MODEL: {'.'.join(rest[0].path)} is not a twin collection of the query")
            alias = rest.pop(0).path[0]
        if not rest or not isinstance(rest[0], Const) or not isinstance(rest[0].value, str):
            raise query_error("IS_OF_MODEL needs a model id string")
        model = str(rest[0].value)
        exact = len(rest) > 1
        if exact and not (isinstance(rest[1], Const) and rest[1].value == "exact"):
            raise query_error("IS_OF_MODEL's last argument can only be exact")
        twin = row.get(alias)
        if not isinstance(twin, dict) or "$metadata" not in twin:
            return None
        twin_model = twin["$metadata"].get("$model")
        if not isinstance(twin_model, str):
            return False
        if exact:
            return twin_model == model
        resolved = self.registry.resolved(twin_model)
        ancestors = resolved.ancestors if resolved is not None else (twin_model,)
        return any(_same_or_later(candidate, model) for candidate in ancestors)


def _same_or_later(candidate: str, wanted: str) -> bool:
    """``dtmi:x;3`` satisfies ``dtmi:x;2`` (reference-query-functions: IS_OF_MODEL without exact)."""
    base, _, version = candidate.partition(";")
    wanted_base, _, wanted_version = wanted.partition(";")
    if base != wanted_base:
        return False
    if not wanted_version:
        return True
    try:
        return tuple(int(p) for p in version.split(".")) >= tuple(int(p) for p in wanted_version.split("."))
    except ValueError:
        return candidate == wanted


def _names_a_twin(node: Any, aliases: set[str], primary_named: bool) -> bool:
    """Whether the condition pins a twin by $dtId (ADT requires it of JOIN queries)."""
    def is_dtid(ref: Any) -> bool:
        if not isinstance(ref, Ref) or ref.path[-1] != "$dtId":
            return False
        return (len(ref.path) == 2 and ref.path[0] in aliases) or (len(ref.path) == 1 and not primary_named)

    if isinstance(node, Compare):
        return node.op == "=" and ((is_dtid(node.left) and isinstance(node.right, Const))
                                   or (is_dtid(node.right) and isinstance(node.left, Const)))
    if isinstance(node, InList):
        return not node.negate and is_dtid(node.operand)
    if isinstance(node, BoolOp):
        found = [_names_a_twin(item, aliases, primary_named) for item in node.items]
        return any(found) if node.op == "AND" else all(found)
    return False


def _pinned_ids(where: Any, twin_aliases: set[str], primary: str, primary_named: bool) -> dict[str, set[str]]:
    """Twin collections the WHERE pins to given ids by a top-level AND term (``X.$dtId = 'a'`` or ``IN [...]``):
    every result row must satisfy it, so rows are filtered while they are built instead of after every JOIN."""
    terms = where.items if isinstance(where, BoolOp) and where.op == "AND" else (where,)
    pins: dict[str, set[str]] = {}
    for term in terms:
        ref: Any = None
        values: tuple[Any, ...] = ()
        if isinstance(term, Compare) and term.op == "=":
            if isinstance(term.left, Ref) and isinstance(term.right, Const):
                ref, values = term.left, (term.right.value,)
            elif isinstance(term.right, Ref) and isinstance(term.left, Const):
                ref, values = term.right, (term.left.value,)
        elif isinstance(term, InList) and not term.negate and isinstance(term.operand, Ref):
            ref, values = term.operand, term.values
        if ref is None or ref.path[-1] != "$dtId":
            continue
        if len(ref.path) == 2 and ref.path[0] in twin_aliases:
            alias = ref.path[0]
        elif len(ref.path) == 1 and not primary_named and primary in twin_aliases:
            alias = primary
        else:
            continue
        ids = {v for v in values if isinstance(v, str)}
        pins[alias] = pins[alias] & ids if alias in pins else ids
    return pins


def run_query(text: str, twins: Mapping[str, dict[str, Any]], relationships: Iterable[dict[str, Any]],
              outgoing: Mapping[str, Iterable[str]], relationship_index: Mapping[tuple[str, str], dict[str, Any]],
              registry: Registry) -> list[Any]:
    query = parse_query(text)
    primary = query.alias or _PRIMARY
    twin_aliases = {primary} if query.collection == "DIGITALTWINS" else set()
    relationship_aliases = {primary} if query.collection == "RELATIONSHIPS" else set()
    for join in query.joins:
        if join.source_alias not in twin_aliases:
            raise query_error(f"JOIN … RELATED {join.source_alias}.{join.relationship_name}: "
                              f"{join.source_alias} is not a twin collection defined before it")
        for new in (join.alias, join.relationship_alias):
            if new is not None and (new in twin_aliases or new in relationship_aliases):
                raise query_error(f"the collection name {new} is used twice")
        twin_aliases.add(join.alias)
        if join.relationship_alias:
            relationship_aliases.add(join.relationship_alias)
    if query.joins and not _names_a_twin(query.where, twin_aliases, query.alias is not None):
        raise query_error("a query with JOIN must name a twin by $dtId in its WHERE clause "
                          "(e.g. WHERE T.$dtId = 'id' or T.$dtId IN [...])")
    evaluator = _Evaluator(query, registry, primary, twin_aliases)

    pins = _pinned_ids(query.where, twin_aliases, primary, query.alias is not None)
    rows: list[Row]
    if query.collection == "DIGITALTWINS":
        keys = sorted(k for k in pins[primary] if k in twins) if primary in pins else sorted(twins)
        rows = [{primary: twins[k]} for k in keys]
    else:
        rows = [{primary: r} for r in sorted(relationships, key=lambda r: (r["$sourceId"], r["$relationshipId"]))]
    for join in query.joins:
        joined: list[Row] = []
        for row in rows:
            source = row[join.source_alias]
            for rel_id in outgoing.get(source["$dtId"], []):
                relationship = relationship_index[(source["$dtId"], rel_id)]
                if relationship["$relationshipName"] != join.relationship_name:
                    continue
                target = twins.get(relationship["$targetId"])
                if target is None or (join.alias in pins and target["$dtId"] not in pins[join.alias]):
                    continue
                new_row = {**row, join.alias: target}
                if join.relationship_alias:
                    new_row[join.relationship_alias] = relationship
                joined.append(new_row)
        rows = joined
    if query.where is not None:
        rows = [row for row in rows if evaluator.truth(query.where, row) is True]
    if query.kind == "count":
        return [{"COUNT": len(rows)}]
    if query.top is not None:
        rows = rows[: query.top]
    project = _projector(query, primary, evaluator)
    return [project(row) for row in rows]


def _projector(query: Query, primary: str, evaluator: _Evaluator) -> Callable[[Row], Any]:
    if query.kind == "star":
        if not query.joins:
            return lambda row: row[primary]
        return lambda row: {k: v for k, v in row.items() if k != _PRIMARY}

    def project(row: Row) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for item in query.items:
            if len(item.path) == 1 and item.path[0] in row:
                out[item.name or item.path[0]] = row[item.path[0]]
                continue
            value = _lookup(row, item.path, primary)
            if value is not UNDEFINED:
                out[item.name or item.path[-1]] = value
        return out

    return project
