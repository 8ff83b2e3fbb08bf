"""Read Tinybird datafiles (`.datasource`, `.pipe`) into plain objects.

Tinybird Local must load the same files `tb` pushes to the cloud, so this follows the
datafile format rather than inventing one: `KEY value` lines, `KEY >` followed by an
indented block, and `NODE name` sections in pipes. A file that cannot be read stops
start-up with its path, line and reason. A server that skipped a data source without a
word would answer with wrong data later, far from the cause.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class DatafileError(ValueError):
    """A datafile that cannot be loaded; the message names the file, line and reason."""

    def __init__(self, path: Path | str, line: int, reason: str):
        """Make the error.

        Args:
            path: the datafile.
            line: the line number, from 1; 0 when no line applies.
            reason: what is wrong.
        """
        self.path, self.line, self.reason = str(path), line, reason
        super().__init__(f"{path}:{line}: {reason}")


@dataclass(frozen=True)
class Column:
    """One SCHEMA column: its type, JSONPath and DEFAULT, as written."""

    name: str
    type: str
    json_path: str | None = None
    default: str | None = None

    @property
    def json_keys(self) -> tuple[str, ...]:
        """`$.a.b` as ('a', 'b'); the column name when the schema gives no path."""
        if not self.json_path:
            return (self.name,)
        return tuple(part for part in self.json_path.removeprefix("$").split(".") if part)


@dataclass(frozen=True)
class TokenLine:
    """A `TOKEN "name" PERMISSION` line."""

    name: str
    permission: str  # READ (pipes) or APPEND (datasources)


@dataclass
class Datasource:
    """A `.datasource` file: its schema, engine settings, description and tokens."""

    name: str
    path: str
    columns: list[Column]
    engine: str = "MergeTree"
    sorting_key: str | None = None
    partition_key: str | None = None
    ttl: str | None = None
    engine_settings: str | None = None
    description: str = ""
    tokens: list[TokenLine] = field(default_factory=list)

    def column(self, name: str) -> Column | None:
        """The column called `name`, or None."""
        return next((c for c in self.columns if c.name == name), None)


@dataclass
class Node:
    """One NODE of a pipe: its SQL and the line it starts on."""

    name: str
    sql: str
    description: str = ""
    line: int = 0


@dataclass
class Pipe:
    """A `.pipe` file: its nodes, type, target data source, description and tokens."""

    name: str
    path: str
    nodes: list[Node]
    # "endpoint" or "materialized". A file without a TYPE line is a classic pipe, and
    # classic Tinybird publishes its last node: `parse_pipe` makes it an endpoint.
    type: str | None = None
    target_datasource: str | None = None
    description: str = ""
    tokens: list[TokenLine] = field(default_factory=list)

    @property
    def is_endpoint(self) -> bool:
        """True when the pipe is published as an API Endpoint."""
        return self.type == "endpoint"

    @property
    def output_node(self) -> Node:
        """The node whose result the pipe gives: the last one."""
        return self.nodes[-1]


@dataclass
class Project:
    """Every data source and pipe of a project, by name."""

    datasources: dict[str, Datasource]
    pipes: dict[str, Pipe]


def _blocks(path: Path, text: str) -> list[tuple[int, str, str]]:
    """Split a datafile into (line number, KEY, value) with `KEY >` blocks dedented."""
    lines = text.splitlines()
    out: list[tuple[int, str, str]] = []
    i = 0
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        if raw[:1].isspace():
            raise DatafileError(path, i + 1, f"unexpected indented line {stripped!r}")
        key, _, rest = stripped.partition(" ")
        rest = rest.strip()
        number = i + 1
        if rest == ">":
            body: list[str] = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i][:1].isspace()):
                body.append(lines[i])
                i += 1
            indent = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=0)
            value = "\n".join(b[indent:] for b in body).strip("\n")
            if not value.strip():
                raise DatafileError(path, number, f"{key} > has no indented block after it")
            out.append((number, key.upper(), value))
            continue
        out.append((number, key.upper(), rest))
        i += 1
    return out


def _unquote(value: str) -> str:
    """`value` without one pair of surrounding quotes, if it has them."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on `sep` outside parentheses, brackets and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


_JSON_PATH = re.compile(r"`json:([^`]*)`")
_COLUMN = re.compile(r"^(`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)\s+(.+)$", re.S)
_DEFAULT = re.compile(r"\s+DEFAULT\s+", re.I)


def _parse_column(path: Path, line: int, text: str) -> Column:
    """One column definition of a SCHEMA block; a DatafileError if it cannot be read."""
    json_path = None
    match = _JSON_PATH.search(text)
    if match:
        json_path = match.group(1).strip()
        if not json_path.startswith("$"):
            raise DatafileError(path, line, f"JSONPath {json_path!r} must start with '$'")
        text = (text[: match.start()] + " " + text[match.end() :]).strip()
    m = _COLUMN.match(text)
    if not m:
        raise DatafileError(path, line, f"cannot read column definition {text!r}")
    name, rest = m.group(1).strip("`"), m.group(2).strip()
    default = None
    parts = _DEFAULT.split(" " + rest, maxsplit=1)
    if len(parts) == 2:
        rest, default = parts[0].strip(), parts[1].strip()
    if not IDENTIFIER.match(name):
        raise DatafileError(path, line, f"column name {name!r} is not a valid identifier")
    if not rest or rest.count("(") != rest.count(")"):
        raise DatafileError(path, line, f"column {name!r} has an invalid type {rest!r}")
    return Column(name=name, type=rest, json_path=json_path, default=default)


def _parse_token(path: Path, line: int, value: str, allowed: set[str]) -> TokenLine:
    """A TOKEN line's name and permission; a DatafileError unless the permission is allowed."""
    m = re.match(r'^"([^"]+)"\s+(\w+)$', value) or re.match(r"^(\S+)\s+(\w+)$", value)
    if not m or m.group(2).upper() not in allowed:
        raise DatafileError(
            path, line, f'TOKEN must read TOKEN "name" {" or ".join(sorted(allowed))}'
        )
    return TokenLine(name=m.group(1), permission=m.group(2).upper())


def parse_datasource(path: Path, text: str | None = None) -> Datasource:
    """A `.datasource` file, read from `path` unless `text` is given. Raises DatafileError."""
    text = path.read_text() if text is None else text
    name = path.stem
    if not IDENTIFIER.match(name):
        raise DatafileError(path, 1, f"datasource name {name!r} is not a valid identifier")
    ds = Datasource(name=name, path=str(path), columns=[])
    for line, key, value in _blocks(path, text):
        if key == "SCHEMA":
            offset = line + 1
            for chunk in split_top_level(value):
                ds.columns.append(_parse_column(path, offset, chunk))
                offset += chunk.count("\n") + 1
        elif key == "ENGINE":
            ds.engine = _unquote(value)
        elif key == "ENGINE_SORTING_KEY":
            ds.sorting_key = _unquote(value)
        elif key == "ENGINE_PARTITION_KEY":
            ds.partition_key = _unquote(value)
        elif key == "ENGINE_TTL":
            ds.ttl = _unquote(value)
        elif key == "ENGINE_SETTINGS":
            ds.engine_settings = _unquote(value)
        elif key == "DESCRIPTION":
            ds.description = value
        elif key == "TOKEN":
            ds.tokens.append(_parse_token(path, line, value, {"APPEND", "READ"}))
        else:
            raise DatafileError(path, line, f"unknown datasource setting {key}")
    if not ds.columns:
        raise DatafileError(path, 1, "datasource has no SCHEMA")
    names = [c.name for c in ds.columns]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise DatafileError(path, 1, f"column {duplicate!r} is defined twice")
    return ds


def parse_pipe(path: Path, text: str | None = None) -> Pipe:
    """A `.pipe` file, read from `path` unless `text` is given. Raises DatafileError."""
    text = path.read_text() if text is None else text
    name = path.stem
    if not IDENTIFIER.match(name):
        raise DatafileError(path, 1, f"pipe name {name!r} is not a valid identifier")
    pipe = Pipe(name=name, path=str(path), nodes=[])
    node: Node | None = None
    for line, key, value in _blocks(path, text):
        if key == "NODE":
            if not IDENTIFIER.match(value):
                raise DatafileError(path, line, f"node name {value!r} is not a valid identifier")
            if any(n.name == value for n in pipe.nodes):
                raise DatafileError(path, line, f"node {value!r} is defined twice")
            node = Node(name=value, sql="", line=line)
            pipe.nodes.append(node)
        elif key == "SQL":
            if node is None:
                raise DatafileError(path, line, "SQL must follow a NODE line")
            node.sql = value
        elif key == "DESCRIPTION":
            if node is None:
                pipe.description = value
            else:
                node.description = value
        elif key == "TYPE":
            kind = _unquote(value).lower()
            if kind not in {"endpoint", "materialized", "copy", "sink"}:
                raise DatafileError(path, line, f"unknown pipe TYPE {value!r}")
            if kind in {"copy", "sink"}:
                raise DatafileError(path, line, f"TYPE {kind} is not supported by Tinybird Local")
            pipe.type = kind
        elif key == "DATASOURCE":
            pipe.target_datasource = _unquote(value)
        elif key == "TOKEN":
            pipe.tokens.append(_parse_token(path, line, value, {"READ"}))
        else:
            raise DatafileError(path, line, f"unknown pipe setting {key}")
    if not pipe.nodes:
        raise DatafileError(path, 1, "pipe has no NODE")
    for n in pipe.nodes:
        if not n.sql.strip():
            raise DatafileError(path, n.line, f"node {n.name!r} has no SQL")
    if pipe.type == "materialized" and not pipe.target_datasource:
        raise DatafileError(path, 1, "TYPE materialized needs a DATASOURCE target line")
    if pipe.type is None:
        # Classic pipes (such as the guide's first top_airlines.pipe) have no TYPE line:
        # classic Tinybird serves their last node as the endpoint.
        pipe.type = "endpoint"
    return pipe


def load_project(project_dir: Path | str) -> Project:
    """Every datafile below `project_dir`, checked for names that clash or dangle."""
    root = Path(project_dir)
    if not root.is_dir():
        raise DatafileError(root, 0, "project directory does not exist")
    datasources: dict[str, Datasource] = {}
    pipes: dict[str, Pipe] = {}
    for path in sorted(root.rglob("*.datasource")):
        ds = parse_datasource(path)
        if ds.name in datasources:
            raise DatafileError(path, 1, f"datasource {ds.name!r} is defined twice")
        datasources[ds.name] = ds
    for path in sorted(root.rglob("*.pipe")):
        pipe = parse_pipe(path)
        if pipe.name in pipes or pipe.name in datasources:
            raise DatafileError(path, 1, f"name {pipe.name!r} is already taken")
        if pipe.type == "materialized" and pipe.target_datasource not in datasources:
            raise DatafileError(
                path, 1, f"materialized target datasource {pipe.target_datasource!r} not found"
            )
        pipes[pipe.name] = pipe
    return Project(datasources=datasources, pipes=pipes)
