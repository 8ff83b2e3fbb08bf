"""Turn a pipe node's templated SQL and a request's parameters into one SQL statement.

Tinybird's pipe template language is Tornado's template syntax, so Tornado itself
(`tornado.template`) does the parsing. Safety does not come from escaping the output.
Request values enter the template wrapped in `Param`, whose only text form is a quoted
SQL string literal. The typed functions (`Int32`, `String`, `Array`, `column`, ...) are
the only way to turn a `Param` into anything else, and each validates the value first.
So no request value can reach SQL as raw text, whatever the template does with it.

An endpoint read renders with `binds`: each quoted text then becomes a query parameter
(`{_tb_p0:String}`) whose value the engine binds. The SQL text then stays the same from
one request to the next, so the guard's verdict on it is reused, even when a window that
moves with the clock sends new values each time.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import types
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import tornado.template

from .datafiles import IDENTIFIER

# What names the bound values in the SQL text: `{_tb_p0:String}`, `{_tb_p1:String}`...
BOUND_PREFIX = "_tb_p"
# The values bound so far while a render binds; None while it writes literals.
_BINDS: ContextVar[dict[str, str] | None] = ContextVar("_BINDS", default=None)


class TemplateError(ValueError):
    """A request the template cannot render: a 400 for the client, naming the parameter."""


class Param:
    """One request parameter. Printing it gives a quoted SQL string, never raw text."""

    __slots__ = ("name", "value")

    def __init__(self, name: str, value: str):
        self.name, self.value = name, value

    def __str__(self) -> str:
        return _text(self.value)

    def __repr__(self) -> str:
        return f"Param({self.name!r}, {self.value!r})"

    def __bool__(self) -> bool:
        return bool(self.value)

    def __eq__(self, other: object) -> bool:
        return self.value == (other.value if isinstance(other, Param) else other)

    def __hash__(self) -> int:
        return hash(self.value)


class Undefined:
    """A parameter the request did not send: falsy, and an error if printed bare."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Undefined) or other is None

    def __hash__(self) -> int:
        return 0

    def __str__(self) -> str:
        raise TemplateError(f"Template Syntax Error: parameter '{self.name}' is not defined")


def quote_identifier(name: str) -> str:
    """A ClickHouse identifier in backticks, any backtick in it doubled."""
    return "`" + name.replace("`", "``") + "`"


def quote_string(value: str) -> str:
    """A ClickHouse string literal: backslash and quote escaped, so the value stays data."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return "'" + escaped + "'"


def _text(value: str) -> str:
    """A text value in SQL: a bound query parameter while binding, else a string literal.

    A bound value is a String parameter, which the engine reads exactly as the literal.
    """
    binds = _BINDS.get()
    if binds is None:
        return quote_string(value)
    name = f"{BOUND_PREFIX}{len(binds)}"
    binds[name] = value
    return "{" + name + ":String}"


def _name(x: Any) -> str:
    """The parameter's name, for an error message."""
    return x.name if isinstance(x, (Param, Undefined)) else "value"


def _raw(x: Any) -> Any:
    """The request's text inside a `Param`; any other value as it is."""
    return x.value if isinstance(x, Param) else x


_INT = re.compile(r"^[+-]?\d+$")
_INT_RANGES = {
    f"{sign}Int{bits}": ((0, 2**bits - 1) if sign else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
    for sign in ("", "U")
    for bits in (8, 16, 32, 64, 128, 256)
}


def _invalid(value: Any, type_name: str, name: str) -> TemplateError:
    return TemplateError(f"Error validating '{value}' to type {type_name} (parameter '{name}')")


def _to_int(value: Any, type_name: str, name: str) -> int:
    low, high = _INT_RANGES[type_name]
    if isinstance(value, bool):
        number = int(value)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INT.match(value.strip()):
        number = int(value.strip())
    else:
        raise _invalid(value, type_name, name)
    if not low <= number <= high:
        raise _invalid(value, type_name, name)
    return number


def _to_float(value: Any, type_name: str, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _invalid(value, type_name, name) from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise _invalid(value, type_name, name)
    return number


def _to_bool(value: Any, type_name: str, name: str) -> bool:
    text = str(value).strip().lower()
    if text in {"1", "true"}:
        return True
    if text in {"0", "false"}:
        return False
    raise _invalid(value, type_name, name)


def _to_date(value: Any, type_name: str, name: str) -> str:
    try:
        return dt.date.fromisoformat(str(value).strip()).isoformat()
    except ValueError:
        raise _invalid(value, type_name, name) from None


def _to_datetime(value: Any, type_name: str, name: str) -> str:
    text = str(value).strip()
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _invalid(value, type_name, name) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    if type_name == "DateTime64":
        return moment.isoformat(sep=" ", timespec="milliseconds")
    return moment.isoformat(sep=" ", timespec="seconds")


def _to_string(value: Any, type_name: str, name: str) -> str:
    return str(value)


# Each converter validates a raw value and gives the SQL literal for it.
_RENDERERS: dict[str, Callable[[Any, str, str], str]] = {
    "String": lambda v, t, n: _text(_to_string(v, t, n)),
    "Float32": lambda v, t, n: repr(_to_float(v, t, n)),
    "Float64": lambda v, t, n: repr(_to_float(v, t, n)),
    "Boolean": lambda v, t, n: "1" if _to_bool(v, t, n) else "0",
    "Date": lambda v, t, n: _text(_to_date(v, t, n)),
    "DateTime": lambda v, t, n: _text(_to_datetime(v, t, n)),
    "DateTime64": lambda v, t, n: _text(_to_datetime(v, t, n)),
}
for _type in _INT_RANGES:
    _RENDERERS[_type] = lambda v, t, n: str(_to_int(v, t, n))


@dataclass(frozen=True)
class ParamSpec:
    """What a template declares about one parameter, for the endpoint explorer."""

    name: str
    type: str
    default: Any = None
    required: bool = False
    description: str = ""


def _value_or_default(x: Any, default: Any, required: bool) -> Any:
    """The request's value, else the template's default; an error naming the parameter."""
    if not (isinstance(x, Undefined) or x is None):
        return _raw(x)
    if required:
        raise TemplateError(f"Template Syntax Error: parameter '{_name(x)}' is required")
    if default is None:
        raise TemplateError(
            f"Template Syntax Error: parameter '{_name(x)}' is not defined and has no default")
    return default


def _typed(type_name: str) -> Callable[..., str]:
    """The template function for one type, e.g. `Int32(x, default, description, required)`."""
    render = _RENDERERS[type_name]

    def typed(x: Any = None, default: Any = None, description: str = "", required: bool = False,
              **_: Any) -> str:
        return render(_value_or_default(x, default, required), type_name, _name(x))

    typed.__name__ = type_name
    return typed


def _array(x: Any = None, type_name: str = "String", default: Any = None, description: str = "",
           required: bool = False, **_: Any) -> str:
    """The template's `Array(x, type, ...)`: a comma-separated value as a typed SQL array."""
    name = _name(x)
    if type_name not in _RENDERERS:
        raise TemplateError(f"Array type {type_name!r} is not supported (parameter '{name}')")
    raw = _value_or_default(x, default, required)
    items = raw if isinstance(raw, (list, tuple)) else [i for i in str(raw).split(",") if i != ""]
    render = _RENDERERS[type_name]
    return "[" + ",".join(render(item, type_name, name) for item in items) + "]"


def _identifier(value: Any, name: str) -> str:
    """A column name in backticks, if it is a plain identifier."""
    text = str(_raw(value))
    if not IDENTIFIER.match(text):
        raise TemplateError(f"Error validating '{text}' to a column name (parameter '{name}')")
    return f"`{text}`"


def _column(x: Any = None, default: Any = None, **_: Any) -> str:
    """The template's `column(x, default)`: one column name."""
    if isinstance(x, Undefined) or x is None:
        if default is None:
            raise TemplateError(f"Template Syntax Error: parameter '{_name(x)}' is not defined")
        return _identifier(default, _name(x))
    return _identifier(x, _name(x))


def _columns(x: Any = None, default: Any = None, **_: Any) -> str:
    """The template's `columns(x, default)`: comma-separated column names."""
    raw = default if isinstance(x, Undefined) or x is None else _raw(x)
    if raw is None:
        raise TemplateError(f"Template Syntax Error: parameter '{_name(x)}' is not defined")
    names = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    return ",".join(_identifier(n.strip(), _name(x)) for n in names)


def _defined(x: Any = None) -> bool:
    """The template's `defined(x)`: True when the request sent the parameter."""
    return isinstance(x, Param)


FUNCTIONS: dict[str, Any] = {name: _typed(name) for name in _RENDERERS}
FUNCTIONS.update(
    {"Bool": FUNCTIONS["Boolean"], "Array": _array, "column": _column, "columns": _columns,
     "defined": _defined, "symbol": _column}
)


def is_templated(sql: str) -> bool:
    """Tinybird marks a templated node with a first line holding only `%`."""
    return sql.lstrip().startswith("%")


def _body(sql: str) -> str:
    """The template without its leading `%` line."""
    return sql.lstrip()[1:].lstrip("\n") if is_templated(sql) else sql


# Names tornado's `Template.generate` puts in the namespace itself; the compiled code
# also calls the built-ins `isinstance` and `str` and its own `_tt_*` helpers.
_TORNADO_NAMES = frozenset({"escape", "xhtml_escape", "url_escape", "json_encode", "squeeze",
                            "linkify", "datetime", "__name__", "__loader__"})


def _code_names(code: types.CodeType) -> set[str]:
    """Every name the compiled code and its nested code objects look up."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


@dataclass
class CompiledTemplate:
    """A parsed template, and the names in it that may be request parameters."""

    template: tornado.template.Template
    free_names: frozenset[str]


@lru_cache(maxsize=512)
def compile_sql(sql: str) -> CompiledTemplate:
    """Parse a templated node once (cached); a TemplateError for bad template syntax."""
    try:
        template = tornado.template.Template(_body(sql), whitespace="all", autoescape=None)
    except tornado.template.ParseError as exc:
        raise TemplateError(f"Template Syntax Error: {exc}") from None
    builtin_names = set(dir(__builtins__)) if not isinstance(__builtins__, dict) else set(
        __builtins__
    )
    free = _code_names(template.compiled) - builtin_names - set(FUNCTIONS) - _TORNADO_NAMES
    free = {n for n in free if not (n.startswith("_tt_") or n.startswith("__"))}
    return CompiledTemplate(template=template, free_names=frozenset(free))


def render_sql(sql: str, params: dict[str, Any], binds: dict[str, str] | None = None) -> str:
    """The SQL for `sql` given request `params`; untemplated SQL is returned as it is.

    With `binds`, text values become query parameters and their values are added to it
    (numbering goes on from what it holds, so several nodes can share one). Without it,
    they are string literals.

    A request value reaches the template only under a name the template itself reads as
    a parameter. Any other name (`isinstance`, `str`, `len`, `Int32`, `column`,
    `__builtins__`, `_tt_utf8`, ...) is ignored. The built-ins, the functions defined
    here and Tornado's own helpers always take precedence, so no request can break the
    template.
    """
    if not is_templated(sql):
        return sql
    compiled = compile_sql(sql)
    namespace: dict[str, Any] = {name: Undefined(name) for name in compiled.free_names}
    for name, value in params.items():
        if name in compiled.free_names:
            namespace[name] = value if isinstance(value, Param) else Param(name, str(value))
    namespace.update(FUNCTIONS)
    token = _BINDS.set(binds)
    try:
        return compiled.template.generate(**namespace).decode()
    except TemplateError:
        raise
    except Exception as exc:  # a bug in the template: say what, not where in this code
        raise TemplateError(f"Template Syntax Error: {type(exc).__name__}: {exc}") from None
    finally:
        _BINDS.reset(token)


class _Names(dict):
    """A namespace where every unknown name is an `Undefined` parameter."""

    def __missing__(self, key: str) -> Undefined:
        return Undefined(key)


def _call_arguments(source: str) -> tuple[Any, tuple, dict] | None:
    """The arguments of `Fn(<source>)`, names standing for themselves; None if unreadable."""
    def record(x: Any = None, *args: Any, **kwargs: Any) -> tuple[Any, tuple, dict]:
        return x, args, kwargs

    try:
        code = compile(f"_record({source})", "<params>", "eval", dont_inherit=True)
        # Template text comes from the project's datafiles, not from requests.
        return eval(code, {"__builtins__": {}}, _Names(_record=record))  # noqa: S307
    except Exception:  # a call we cannot read statically is left out of the documentation
        return None


_CALL = re.compile(r"\b(" + "|".join(sorted(FUNCTIONS, key=len, reverse=True)) + r")\s*\(")


def declared_params(sql: str) -> list[ParamSpec]:
    """Parameters a node's template reads through typed functions, for documentation.

    Each `Fn(name, ...)` argument list is evaluated with a stand-in function that only
    records its arguments, so defaults and descriptions come from the template itself.
    """
    if not is_templated(sql):
        return []
    specs: dict[str, ParamSpec] = {}
    body = _body(sql)
    for match in _CALL.finditer(body):
        fn = match.group(1)
        if fn == "defined":
            continue
        depth, end = 0, match.end() - 1
        for i in range(match.end() - 1, len(body)):
            depth += {"(": 1, ")": -1}.get(body[i], 0)
            if depth == 0:
                end = i
                break
        call = _call_arguments(body[match.end() : end])
        if call is None:
            continue
        x, args, kwargs = call
        if not isinstance(x, Undefined):
            continue
        if fn == "Array":
            type_name = f"Array({args[0] if args else kwargs.get('type_name', 'String')})"
            default = args[1] if len(args) > 1 else kwargs.get("default")
        else:
            type_name = "column" if fn in {"column", "columns", "symbol"} else fn
            default = args[0] if args else kwargs.get("default")
        description = kwargs.get("description") or (args[1] if len(args) > 1 and fn != "Array"
                                                     else "")
        spec = ParamSpec(name=x.name, type=type_name, default=default,
                         required=bool(kwargs.get("required", False)),
                         description=str(description or ""))
        previous = specs.get(x.name)
        if previous is None or (not previous.description and spec.description):
            specs[x.name] = spec
    return list(specs.values())
