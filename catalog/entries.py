"""A register's catalog entry as a holder publishes it: read from YAML or JSON text, and
the structural changes between two versions of it.

`parse_entry` reads an entry sent over the network, so it trusts nothing: the text's size,
its nesting and its number of nodes are bounded (engine/limits.py), YAML is read with a
safe loader, and the bounds hold after YAML's aliases are expanded (an alias repeats its
anchor's value: a small text could otherwise become a huge or a recursive one). Every
error says where it is: the field's path in the entry and, for YAML, its line and column.

`entry_changes` is the structural diff a version records: the paths added, removed or
changed, variables matched by name (a variable moved in the list is not a change).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from antal.catalog.errors import CatalogError
from antal.catalog.models import FieldError, Register
from antal.engine.limits import MAX_ENTRY_BYTES, MAX_ENTRY_DEPTH, MAX_ENTRY_NODES

__all__ = ["EntryInvalid", "Format", "entry_changes", "parse_entry", "summarize_changes"]

Format = Literal["yaml", "json"]


class EntryInvalid(CatalogError):
    """An entry that cannot be read or does not validate: `field` is its path in the
    entry (`variables.3.type`; empty for the whole text), `line` and `column` where the
    text has it (1-based; None when unknown, as for a JSON entry's field)."""

    def __init__(
        self, field: str, message: str, line: int | None = None, column: int | None = None
    ) -> None:
        self.line, self.column = line, column
        where = f"line {line}, column {column}" if line is not None else ""
        super().__init__(where or "entry", field, message)

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "line": self.line, "column": self.column}


# ---- reading ----------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """The safe loader with bounded nesting and size (before aliases are expanded)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nodes = 0
        self._level = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        ev = self.peek_event()
        self._nodes += 1
        if self._nodes > MAX_ENTRY_NODES:
            raise _Refused(f"an entry has at most {MAX_ENTRY_NODES} values", ev.start_mark)
        # the composer recurses: the level is bounded before Python's stack is
        self._level += 1
        try:
            if self._level > MAX_ENTRY_DEPTH:
                raise _Refused(f"an entry nests at most {MAX_ENTRY_DEPTH} levels", ev.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._level -= 1


class _Refused(Exception):
    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message, self.mark = message, mark


def _locate(node: yaml.Node | None, path: tuple[Any, ...]) -> tuple[int, int] | None:
    """Line and column (1-based) of the node at `path` of a composed document (or of the
    deepest node on the way, for a missing field: the mapping it is missing from)."""
    best = node
    for part in path:
        if isinstance(best, yaml.MappingNode):
            nxt = next((v for k, v in best.value if getattr(k, "value", None) == str(part)), None)
        elif isinstance(best, yaml.SequenceNode) and isinstance(part, int):
            nxt = best.value[part] if 0 <= part < len(best.value) else None
        else:
            nxt = None
        if nxt is None:
            break
        best = nxt
    if best is None:
        return None
    return best.start_mark.line + 1, best.start_mark.column + 1


def _bounded(value: Any) -> None:
    """Refuse a value (aliases expanded) with too many values or nested too deeply; the
    walk stops at the first bound crossed, so a recursive or exploding value is cheap."""
    nodes, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        nodes += 1
        if nodes > MAX_ENTRY_NODES:
            raise EntryInvalid("", f"an entry has at most {MAX_ENTRY_NODES} values")
        if d > MAX_ENTRY_DEPTH:
            raise EntryInvalid("", f"an entry nests at most {MAX_ENTRY_DEPTH} levels")
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)


def parse_entry(text: str | bytes, fmt: Format) -> Register:
    """The entry in `text` (YAML or JSON), validated; `EntryInvalid` saying where not."""
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > MAX_ENTRY_BYTES:
        raise EntryInvalid("", f"an entry is at most {MAX_ENTRY_BYTES} bytes, not {len(raw)}")
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise EntryInvalid("", f"not UTF-8 text (byte {e.start})") from None
    node: yaml.Node | None = None
    if fmt == "yaml":
        loader = _Loader(source)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        except _Refused as e:
            raise EntryInvalid("", e.message, e.mark.line + 1, e.mark.column + 1) from None
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
            raise EntryInvalid("", f"not valid YAML: {e.problem or e.context}", line, col) from None
        except yaml.YAMLError as e:
            raise EntryInvalid("", f"not valid YAML: {e}") from None
        finally:
            loader.dispose()
    else:
        try:
            data = json.loads(source)
        except json.JSONDecodeError as e:
            raise EntryInvalid("", f"not valid JSON: {e.msg}", e.lineno, e.colno) from None
        except RecursionError:
            raise EntryInvalid("", f"an entry nests at most {MAX_ENTRY_DEPTH} levels") from None
    _bounded(data)
    if not isinstance(data, dict):
        raise EntryInvalid("", "an entry is a mapping of fields (id, title, variables, ...)")
    return _validated(data, node)


def _validated(data: dict[str, Any], node: yaml.Node | None) -> Register:
    try:
        return Register.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        msg = err["msg"]
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, FieldError):  # a check across fields names the field it failed on
            loc = (*loc, *cause.field.split("."))
            loc = tuple(int(p) if isinstance(p, str) and p.isdigit() else p for p in loc)
            msg = str(cause)
        elif isinstance(cause, ValueError):
            msg = str(cause)
        if err["type"] == "literal_error":
            msg = f"expected {err['ctx']['expected']}, got {err['input']!r}"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field"
        at = _locate(node, loc) if node is not None else None
        field = ".".join(str(p) for p in loc)
        raise EntryInvalid(field, msg, *(at or (None, None))) from None


# ---- changes between versions ---------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    path: str
    op: Literal["added", "removed", "changed"]
    old: Any = None
    new: Any = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "op": self.op}
        if self.op != "added":
            out["old"] = self.old
        if self.op != "removed":
            out["new"] = self.new
        return out


def _keyed(items: list[Any]) -> dict[str, Any] | None:
    """A list of named mappings (variables) by name; None for any other list."""
    if items and all(isinstance(x, dict) and isinstance(x.get("name"), str) for x in items):
        names = [x["name"] for x in items]
        if len(set(names)) == len(names):
            return {x["name"]: x for x in items}
    return None


def _diff(old: Any, new: Any, path: str, out: list[Change]) -> None:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for k in [*old, *(k for k in new if k not in old)]:
            p = f"{path}.{k}" if path else str(k)
            if k not in new:
                if old[k] is not None:
                    out.append(Change(p, "removed", old=old[k]))
            elif k not in old:
                if new[k] is not None:
                    out.append(Change(p, "added", new=new[k]))
            else:
                _diff(old[k], new[k], p, out)
        return
    if isinstance(old, list) and isinstance(new, list):
        ko, kn = _keyed(old), _keyed(new)
        if ko is not None and kn is not None:
            _diff(ko, kn, path, out)
            return
    if old in (None, []) and new not in (None, []):
        out.append(Change(path, "added", new=new))
    elif new in (None, []) and old not in (None, []):
        out.append(Change(path, "removed", old=old))
    else:
        out.append(Change(path, "changed", old, new))


def entry_changes(old: Register | None, new: Register) -> list[dict[str, Any]]:
    """What changed from `old` to `new` (everything is added when there is no `old`), as
    JSON: {path, op, old, new}; a variable's path is `variables.<name>`."""
    out: list[Change] = []
    _diff(old.model_dump(mode="json") if old else {}, new.model_dump(mode="json"), "", out)
    return [c.to_json() for c in out]


def summarize_changes(changes: list[dict[str, Any]], limit: int = 8) -> str:
    """One line for people and the audit log: `changed description.en; added variables.ldl`."""
    if not changes:
        return "no change"
    parts = [f"{c['op']} {c['path']}" for c in changes[:limit]]
    if len(changes) > limit:
        parts.append(f"and {len(changes) - limit} more")
    return "; ".join(parts)
