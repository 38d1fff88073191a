"""Parse, allowlist and type-check an expression.

``check(source, scope, registry)`` parses in eval mode, enforces the size
limits, walks the tree through an allowlist of node kinds, resolves every
name against the scope and every call against the function registry, and
works out the type (and, for numbers, the decimal places) of every node.
Nothing is evaluated here. Numeric literals are turned into ``Decimal`` in
the tree, so whoever runs the tree afterwards never sees an int or a float
literal.
"""
from __future__ import annotations

import ast
import difflib
import io
import tokenize
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from danbao.expr.errors import ExprError
from danbao.expr.functions import ArgError, FunctionRegistry, FunctionSpec
from danbao.expr.kinds import (ANY, BOOLEAN, DATE, DATETIME, EXPECTABLE, NULL, NUMBER,
                               TEXT, word)
from danbao.expr.scope import Scope

MAX_LENGTH = 1000       # characters of source
MAX_NODES = 200         # AST nodes (operators and contexts not counted)
MAX_DEPTH = 20          # nesting levels, and bracket nesting in the source
MAX_TEXT_LITERAL = 200  # characters of one text literal
MAX_DIGITS = 28         # significant digits / magnitude of a number literal
MAX_IN_ITEMS = 50       # values in an `in` list
MAX_EXPONENT = 10       # x ** n: 0 <= n <= 10
#: Decimal places the result of `/` is rounded to (ROUND_HALF_UP).
DIV_SCALE = 10

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
           ast.Mod: "%", ast.Pow: "**"}
_VERBS = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "divide",
          ast.FloorDiv: "divide", ast.Mod: "take the remainder of", ast.Pow: "raise"}
_CMPOPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">",
           ast.GtE: ">=", ast.In: "in", ast.NotIn: "not in"}
_ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_ADDITIVE = (ast.Add, ast.Sub)
_MULTIPLICATIVE = (ast.Mult, ast.Div, ast.FloorDiv, ast.Mod)
_NOT_COUNTED = (ast.expr_context, ast.operator, ast.unaryop, ast.boolop, ast.cmpop)

#: How refused node kinds are named in EX010 messages.
_REFUSED = {
    "Attribute": "attribute access (x.y) is not allowed",
    "Subscript": "subscripts and indexing (x[...]) are not allowed",
    "Slice": "slices are not allowed",
    "ListComp": "comprehensions are not allowed",
    "SetComp": "comprehensions are not allowed",
    "DictComp": "comprehensions are not allowed",
    "GeneratorExp": "generator expressions are not allowed",
    "Lambda": "lambda is not allowed",
    "JoinedStr": "f-strings are not allowed",
    "FormattedValue": "f-strings are not allowed",
    "Dict": "dict literals are not allowed",
    "Set": "set literals are not allowed",
    "List": "list literals are only allowed after `in`",
    "Tuple": "tuple literals are only allowed after `in`",
    "Starred": "starred arguments (*x) are not allowed",
    "NamedExpr": "assignment expressions (:=) are not allowed",
    "Await": "await is not allowed",
    "Yield": "yield is not allowed",
    "YieldFrom": "yield is not allowed",
}


@dataclass
class Checked:
    """The outcome of a successful check: the (Decimal-literal) tree and what
    the checker learnt about each node, keyed by ``id(node)``."""
    source: str
    tree: ast.Expression
    type: str
    names: frozenset[str]
    functions: dict[str, FunctionSpec]
    types: dict[int, str] = field(default_factory=dict)
    scales: dict[int, int | None] = field(default_factory=dict)
    folded: dict[int, object] = field(default_factory=dict)
    in_items: dict[int, tuple] = field(default_factory=dict)


class Checker:
    def __init__(self, source: str, scope: Scope, registry: FunctionRegistry):
        self.source = source
        self.scope = scope
        self.registry = registry
        self.names: set[str] = set()
        self.functions: dict[str, FunctionSpec] = {}
        self.types: dict[int, str] = {}
        self.scales: dict[int, int | None] = {}
        self.folded: dict[int, object] = {}
        self.in_items: dict[int, tuple] = {}
        self._line_starts = _line_starts(source)

    # -- errors -------------------------------------------------------------------
    def col(self, node) -> int | None:
        """1-based character position of ``node`` in the whole source."""
        lineno = getattr(node, "lineno", None)
        offset = getattr(node, "col_offset", None)
        if lineno is None or offset is None:
            return None
        start = self._line_starts[lineno - 1] if lineno - 1 < len(self._line_starts) else 0
        line = self.source[start:].split("\n", 1)[0]
        chars = len(line.encode("utf-8")[:offset].decode("utf-8", errors="ignore"))
        return start + chars + 1

    def err(self, code: str, message: str, node=None) -> ExprError:
        return ExprError(code, message, self.col(node) if node is not None else None, self.source)

    # -- entry --------------------------------------------------------------------
    def check(self, expect: str | None = None) -> Checked:
        tree = self.parse()
        kind = self.visit(tree.body)
        if expect is not None:
            if expect not in EXPECTABLE:
                raise ValueError(f"expect must be one of {sorted(EXPECTABLE)}, not {expect!r}")
            if kind != expect and kind != ANY:
                what = "a yes/no expression (a condition)" if expect == BOOLEAN else f"a {word(expect)}"
                raise self.err("EX021", f"expected {what}, but this gives {_a(word(kind))}", tree.body)
        return Checked(self.source, tree, kind, frozenset(self.names), dict(self.functions),
                       self.types, self.scales, self.folded, self.in_items)

    def parse(self) -> ast.Expression:
        src = self.source
        if not isinstance(src, str):
            raise TypeError(f"an expression is a str, not {type(src).__name__}")
        if len(src) > MAX_LENGTH:
            raise self.err("EX002", f"expression is {len(src)} characters long; at most {MAX_LENGTH} are allowed")
        if not src.strip():
            raise self.err("EX001", "empty expression")
        try:
            tree = ast.parse(src, mode="eval")
        except SyntaxError as exc:
            col = None
            if exc.lineno and exc.offset:
                starts = self._line_starts
                col = (starts[exc.lineno - 1] if exc.lineno - 1 < len(starts) else 0) + exc.offset
            raise ExprError("EX001", f"syntax error: {exc.msg}", col, src) from None
        except (ValueError, TypeError) as exc:      # e.g. null bytes
            raise self.err("EX001", f"syntax error: {exc}") from None
        except (RecursionError, MemoryError):
            raise self.err("EX004", "expression is nested too deeply") from None
        self._bracket_depth()
        nodes = sum(1 for n in ast.walk(tree) if not isinstance(n, _NOT_COUNTED)) - 1
        if nodes > MAX_NODES:
            raise self.err("EX003", f"expression has {nodes} parts; at most {MAX_NODES} are allowed")
        depth = _depth(tree.body)
        if depth > MAX_DEPTH:
            raise self.err("EX004", f"expression is nested {depth} levels deep; at most {MAX_DEPTH} are allowed")
        return tree

    def _bracket_depth(self) -> None:
        depth = 0
        try:
            for tok in tokenize.generate_tokens(io.StringIO(self.source).readline):
                if tok.type == tokenize.OP and tok.string in "([{":
                    depth += 1
                    if depth > MAX_DEPTH:
                        raise ExprError("EX004", f"brackets are nested more than {MAX_DEPTH} levels deep",
                                        self._line_starts[tok.start[0] - 1] + tok.start[1] + 1, self.source)
                elif tok.type == tokenize.OP and tok.string in ")]}":
                    depth -= 1
        except (tokenize.TokenError, SyntaxError):   # pragma: no cover - the source parsed
            pass

    # -- the walk -----------------------------------------------------------------
    def visit(self, node) -> str:
        name = type(node).__name__
        method = getattr(self, "v_" + name, None)
        if method is None:
            raise self.err("EX010", _REFUSED.get(name, f"{name} is not allowed"), node)
        kind, scale = method(node)
        self.types[id(node)] = kind
        self.scales[id(node)] = scale if kind in (NUMBER, ANY) else None
        return kind

    def v_Constant(self, node: ast.Constant):
        value = node.value
        if value is None:
            return NULL, None
        if type(value) is bool:
            return BOOLEAN, None
        if type(value) is str:
            if len(value) > MAX_TEXT_LITERAL:
                raise self.err("EX031", f"text literal is {len(value)} characters long; "
                                        f"at most {MAX_TEXT_LITERAL} are allowed", node)
            return TEXT, None
        if type(value) in (int, float):
            number = self._decimal_literal(node)
            node.value = number
            return NUMBER, max(0, -number.as_tuple().exponent)
        if type(value) is Decimal:          # already converted (a node visited twice)
            return NUMBER, max(0, -value.as_tuple().exponent)
        if type(value) is bytes:
            raise self.err("EX010", "bytes literals are not allowed", node)
        if type(value) is complex:
            raise self.err("EX010", "complex numbers are not allowed", node)
        raise self.err("EX010", f"{type(value).__name__} literals are not allowed", node)

    def _decimal_literal(self, node: ast.Constant) -> Decimal:
        value = node.value
        if type(value) is int:
            if value.bit_length() > 100:
                raise self.err("EX031", f"number literal is too large (at most {MAX_DIGITS} digits)", node)
            number = Decimal(value)
        else:
            text = ast.get_source_segment(self.source, node) or repr(value)
            try:
                number = Decimal(text.replace("_", ""))
            except InvalidOperation:
                number = Decimal(repr(value))
        if not number.is_finite():
            raise self.err("EX031", "number literal is not finite", node)
        digits = number.as_tuple()
        if len(digits.digits) > MAX_DIGITS or number.adjusted() >= MAX_DIGITS \
                or digits.exponent < -MAX_DIGITS:
            raise self.err("EX031", f"number literal is too large or too precise "
                                    f"(at most {MAX_DIGITS} digits)", node)
        return number

    def v_Name(self, node: ast.Name):
        info = self.scope.get(node.id)
        if info is not None:
            self.names.add(node.id)
            return info.type, info.scale
        if node.id in self.registry:
            raise self.err("EX011", f"{node.id} is a function: call it as {node.id}(...)", node)
        close = difflib.get_close_matches(node.id, list(self.scope), n=3, cutoff=0.6)
        hint = f" (did you mean: {', '.join(close)}?)" if close else ""
        raise self.err("EX011", f"unknown name {node.id!r}{hint}", node)

    def v_UnaryOp(self, node: ast.UnaryOp):
        if isinstance(node.op, ast.Invert):
            raise self.err("EX010", "operator ~ is not allowed", node)
        kind = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            if kind not in (BOOLEAN, NULL, ANY):
                raise self.err("EX020", f"`not` needs a yes/no value, got {_a(word(kind))}", node)
            return BOOLEAN, None
        if kind not in (NUMBER, NULL, ANY):
            sign = "-" if isinstance(node.op, ast.USub) else "+"
            raise self.err("EX020", f"cannot apply {sign} to {_a(word(kind))}", node)
        return (NUMBER if kind == NULL else kind), self.scales.get(id(node.operand))

    def v_BinOp(self, node: ast.BinOp):
        op = type(node.op)
        if op not in _BINOPS:
            raise self.err("EX010", f"operator {_OP_SYMBOLS.get(op, op.__name__)} is not allowed", node)
        if op is ast.Pow:
            self._check_power(node)
        lt = self.visit(node.left)
        rt = self.visit(node.right)
        ls, rs = self.scales.get(id(node.left)), self.scales.get(id(node.right))
        verb = _VERBS[op]
        temporal = {DATE, DATETIME}
        if lt in temporal or rt in temporal:
            if op is ast.Sub and lt in temporal and rt in temporal:
                raise self.err("EX020", "cannot subtract dates: use days_between(a, b)", node)
            raise self.err("EX020", f"cannot {verb} {word(lt)} and {word(rt)}: dates only through "
                                    f"date functions (add_days, add_months, days_between)", node)
        if op is ast.Add and (lt == TEXT or rt == TEXT):
            if lt in (TEXT, NULL, ANY) and rt in (TEXT, NULL, ANY):
                return TEXT, None
            raise self.err("EX020", f"cannot add {word(lt)} and {word(rt)}", node)
        if lt not in (NUMBER, NULL, ANY) or rt not in (NUMBER, NULL, ANY):
            raise self.err("EX020", f"cannot {verb} {word(lt)} and {word(rt)}", node)
        kind = ANY if ANY in (lt, rt) and op is ast.Add and NUMBER not in (lt, rt) else NUMBER
        return kind, _result_scale(op, ls, rs, node)

    def _check_power(self, node: ast.BinOp) -> None:
        if any(_is_pow(n) for n in ast.walk(node.left)) or _is_pow(node.right):
            raise self.err("EX030", "nested ** is not allowed", node)
        n = node.right
        if not (isinstance(n, ast.Constant) and type(n.value) is int
                and 0 <= n.value <= MAX_EXPONENT):
            raise self.err("EX030", f"the exponent of ** must be a literal whole number from 0 to "
                                    f"{MAX_EXPONENT}", node.right)

    def v_BoolOp(self, node: ast.BoolOp):
        word_ = "and" if isinstance(node.op, ast.And) else "or"
        for value in node.values:
            kind = self.visit(value)
            if kind not in (BOOLEAN, NULL, ANY):
                raise self.err("EX020", f"`{word_}` needs yes/no values, got {_a(word(kind))} "
                                        f"(compare it, e.g. x > 0)", value)
        return BOOLEAN, None

    def v_Compare(self, node: ast.Compare):
        left = node.left
        lt = self.visit(left)
        for op, right in zip(node.ops, node.comparators):
            opt = type(op)
            if opt not in _CMPOPS:
                what = "is" if opt is ast.Is else "is not"
                raise self.err("EX010", f"`{what}` is not allowed; use == None or != None", node)
            if opt in (ast.In, ast.NotIn):
                if len(node.ops) > 1:
                    raise self.err("EX010", "`in` cannot be chained with other comparisons; "
                                            "use `and`", node)
                rt = self._in_list(node, left, lt, op, right)
            else:
                rt = self.visit(right)
                self._compare(node, left, lt, op, right, rt)
            left, lt = right, rt
        return BOOLEAN, None

    def _compare(self, node, left, lt, op, right, rt) -> None:
        sym = _CMPOPS[type(op)]
        if isinstance(op, _ORDERING):
            if NULL in (lt, rt):
                raise self.err("EX020", f"cannot use {sym} with None; use == None or != None", node)
            for k in (lt, rt):
                if k == TEXT:
                    raise self.err("EX020", "text can only be compared with ==, != or in", node)
                if k == BOOLEAN:
                    raise self.err("EX020", "yes/no values can only be compared with == or !=", node)
        if NULL in (lt, rt) or ANY in (lt, rt) or lt == rt:
            self._option_check(left, right)
            self._option_check(right, left)
            return
        raise self.err("EX020", f"cannot compare {word(lt)} with {word(rt)}", node)

    def _option_check(self, name_node, literal_node) -> None:
        """``status == 'activ'`` is caught when status is an enum/code field."""
        if isinstance(name_node, ast.Name) and isinstance(literal_node, ast.Constant) \
                and type(literal_node.value) is str:
            self._check_option(name_node, literal_node.value, literal_node)

    def _check_option(self, name_node: ast.Name, value: str, at) -> None:
        info = self.scope.get(name_node.id)
        if info is None or info.options is None or value in info.options:
            return
        shown = sorted(info.options)
        listing = ", ".join(shown[:12]) + (", ..." if len(shown) > 12 else "")
        close = difflib.get_close_matches(value, shown, n=3, cutoff=0.6)
        hint = f" (did you mean: {', '.join(close)}?)" if close else ""
        raise self.err("EX022", f"{value!r} is not an option of {name_node.id}{hint}; options: {listing}", at)

    def _in_list(self, node, left, lt, op, right) -> str:
        if not isinstance(right, (ast.List, ast.Tuple)):
            raise self.err("EX010", "the right side of `in` must be a literal list, "
                                    "e.g. status in ('draft', 'active')", right)
        n = len(right.elts)
        if n == 0 or n > MAX_IN_ITEMS:
            raise self.err("EX032", f"an `in` list holds 1 to {MAX_IN_ITEMS} values, this one has {n}", right)
        values, kinds = [], set()
        for elt in right.elts:
            value, kind = self._in_item(elt)
            values.append(value)
            kinds.add(kind)
        if len(kinds) > 1:
            raise self.err("EX020", "an `in` list must hold values of one type", right)
        kind = kinds.pop()
        if lt not in (kind, ANY):
            raise self.err("EX020", f"cannot look for {_a(word(lt))} in a list of {word(kind)} values", node)
        if kind == TEXT and isinstance(left, ast.Name):
            for elt, value in zip(right.elts, values):
                self._check_option(left, value, elt)
        self.in_items[id(right)] = tuple(values)
        self.types[id(right)] = kind
        self.scales[id(right)] = max((self.scales.get(id(e)) or 0 for e in right.elts), default=0) \
            if kind == NUMBER else None
        return kind

    def _in_item(self, elt):
        """One `in` list value: a text or number literal (a sign allowed)."""
        target, negate = elt, False
        if isinstance(elt, ast.UnaryOp) and isinstance(elt.op, (ast.USub, ast.UAdd)):
            target, negate = elt.operand, isinstance(elt.op, ast.USub)
        if not isinstance(target, ast.Constant) or target.value is None \
                or type(target.value) is bool:
            raise self.err("EX010" if not isinstance(target, ast.Constant) else "EX020",
                           "an `in` list may hold only text or number literals", elt)
        kind = self.visit(elt)
        if kind == TEXT and target is not elt:
            raise self.err("EX020", "cannot apply a sign to text", elt)
        if kind not in (TEXT, NUMBER):
            raise self.err("EX020", "an `in` list may hold only text or number literals", elt)
        value = target.value
        return (-value if negate else value), kind

    def v_IfExp(self, node: ast.IfExp):
        test = self.visit(node.test)
        if test not in (BOOLEAN, NULL, ANY):
            raise self.err("EX020", f"the condition of if/else must be yes/no, got {_a(word(test))}", node.test)
        bt, ot = self.visit(node.body), self.visit(node.orelse)
        if bt == ot or NULL in (bt, ot) or ANY in (bt, ot):
            kind = ot if bt in (NULL, ANY) else bt
            bs, os_ = self.scales.get(id(node.body)), self.scales.get(id(node.orelse))
            scale = None
            if kind == NUMBER:
                known = [s for k, s in ((bt, bs), (ot, os_)) if k != NULL]
                scale = None if None in known else max(known, default=0)
            return kind, scale
        raise self.err("EX020", f"the two branches of if/else have different types: "
                                f"{word(bt)} and {word(ot)}", node)

    def v_Call(self, node: ast.Call):
        func = node.func
        if not isinstance(func, ast.Name):
            kind = type(func).__name__
            if kind in _REFUSED:
                raise self.err("EX010", _REFUSED[kind], func)
            raise self.err("EX012", "only registered functions can be called, by their name", node)
        if node.keywords:
            raise self.err("EX010", "keyword arguments are not allowed", node.keywords[0].value)
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.err("EX010", _REFUSED["Starred"], arg)
        spec = self.registry.get(func.id)
        if spec is None:
            close = self.registry.close_matches(func.id)
            if func.id in self.scope:
                hint = f" ({func.id} is a field, not a function)"
            else:
                hint = f" (did you mean: {', '.join(c + '()' for c in close)}?)" if close else ""
            raise self.err("EX012", f"unknown function {func.id}(){hint}", func)
        arg_types = [self.visit(a) for a in node.args]
        try:
            result = spec.result_type(arg_types)
        except ArgError as exc:
            raise self.err("EX013", str(exc), node) from None
        if spec.literal_args:
            self._fold(node, spec)
        self.functions[spec.name] = spec
        scale = spec.result_scale([self.scales.get(id(a)) for a in node.args])
        return result, scale

    def _fold(self, node: ast.Call, spec: FunctionSpec) -> None:
        values = []
        for arg in node.args:
            if not (isinstance(arg, ast.Constant) and type(arg.value) is Decimal
                    and arg.value == arg.value.to_integral_value()):
                raise self.err("EX013", f"{spec.name}() takes literal whole numbers, "
                                        f"e.g. {spec.name}(2024, 1, 31)", arg)
            values.append(arg.value)
        try:
            self.folded[id(node)] = spec.fn(*values)
        except (ValueError, OverflowError, ArithmeticError) as exc:
            raise self.err("EX013", f"{spec.name}({', '.join(str(v) for v in values)}) is not valid: {exc}",
                           node) from None


_OP_SYMBOLS = {ast.BitOr: "|", ast.BitAnd: "&", ast.BitXor: "^", ast.LShift: "<<",
               ast.RShift: ">>", ast.MatMult: "@"}


def _a(w: str) -> str:
    return ("an " if w[:1] in "aeiou" else "a ") + w if w not in ("None",) else w


def _is_pow(node) -> bool:
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow)


def _result_scale(op, ls, rs, node) -> int | None:
    if op is ast.Div:
        return DIV_SCALE
    if op is ast.FloorDiv:
        return 0
    if op is ast.Pow:
        return None if ls is None else ls * node.right.value
    if ls is None or rs is None:
        return None
    if op is ast.Mult:
        return ls + rs
    return max(ls, rs)           # + - %


def _line_starts(source) -> list[int]:
    if not isinstance(source, str):
        return [0]
    starts, pos = [0], 0
    for line in source.split("\n")[:-1]:
        pos += len(line) + 1
        starts.append(pos)
    return starts


def _depth(node) -> int:
    """Nesting depth; a chain like ``a + b + c + ...`` (or ``a * b * c``) counts
    as one level, as does a chained comparison or an and/or over many values."""
    best = 0
    for child in ast.iter_child_nodes(node):
        if isinstance(child, _NOT_COUNTED):
            continue
        d = _depth(child)
        if _same_chain(node, child):
            d -= 1
        best = max(best, d)
    return best + 1


def _same_chain(parent, child) -> bool:
    if not (isinstance(parent, ast.BinOp) and isinstance(child, ast.BinOp) and parent.left is child):
        return False
    for group in (_ADDITIVE, _MULTIPLICATIVE):
        if isinstance(parent.op, group) and isinstance(child.op, group):
            return True
    return False


def check(source: str, scope: Scope, registry: FunctionRegistry, expect: str | None = None) -> Checked:
    """Check ``source``; raises ExprError with a stable code."""
    return Checker(source, scope, registry).check(expect)
