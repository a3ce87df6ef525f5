"""A YAML policy (or a scenario) read with the line and column of every value: each
problem as `file:line:col: message`, never an alias bomb or a duplicate key."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)

from sync.licenses.kinds import OTHER_KINDS, TOOLS
from sync.policy.models import Policy
from sync.values.errors import PolicyError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class PolicyErrors(PolicyError):
    """One or more problems in a policy file."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# Aliases may repeat a list, not multiply it a million-fold (a 340-byte alias bomb took
# 7 s and 1.4 GB before this check): what they add beyond the values written out is
# bounded, never the size of a plain policy (10,000 pools are written out, not a bomb).
MAX_NODES = 100_000


# libyaml's parser where PyYAML was built with it (its wheels are): a 10,000-pool policy
# is read in a second instead of fifteen
LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _alias_growth(node: yaml.Node) -> int:
    """How many values aliases add to `node` once expanded."""
    return _expanded_size(node, {}) - _written(node)


def _written(node: yaml.Node) -> int:
    """The values written out in the text: each node once, however often aliased."""
    seen: set[int] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, yaml.MappingNode):
            stack += [x for kv in n.value for x in kv]
        elif isinstance(n, yaml.SequenceNode):
            stack += n.value
    return len(seen)


def _expanded_size(node: yaml.Node, memo: dict[int, int], bound: int = 1 << 62) -> int:
    """How many values `node` stands for once every alias is expanded (linear: memoized;
    counting stops past `bound`)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = bound + 1  # a node inside itself would expand forever
    size = 1
    if isinstance(node, yaml.MappingNode):
        size += sum(
            _expanded_size(k, memo, bound) + _expanded_size(v, memo, bound) for k, v in node.value
        )
    elif isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(v, memo, bound) for v in node.value)
    memo[key] = min(size, bound + 1)
    return memo[key]


def _positions(
    node: yaml.Node,
    path: tuple[Any, ...],
    out: dict[tuple[Any, ...], tuple[int, int]],
    keys: dict[tuple[Any, ...], tuple[int, int]],
) -> None:
    out[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
            keys[(*path, key)] = (k.start_mark.line + 1, k.start_mark.column + 1)
            _positions(v, (*path, key), out, keys)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _positions(v, (*path, i), out, keys)


def _fields_at(loc: tuple[Any, ...], root: type[BaseModel]) -> list[str]:
    """The keys allowed where `loc` points, walking the models' annotations."""
    from typing import Union, get_args, get_origin

    ann: Any = root
    for part in loc:
        ann = _unwrapped(ann)
        origin = get_origin(ann)
        if origin in (dict, list):
            ann = get_args(ann)[-1]
            continue
        if origin in (Union, UnionType):
            models = [a for a in get_args(ann) if isinstance(a, type) and issubclass(a, BaseModel)]
            ann = next((m for m in models if part in m.model_fields), models[0] if models else None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        field = ann.model_fields.get(str(part))
        if field is None:
            return []
        ann = field.annotation
    return _keys_of(_unwrapped(ann))


def _unwrapped(ann: Any) -> Any:
    """An annotation without its `Annotated[...]` layers."""
    from typing import get_args, get_origin

    while get_origin(ann) is Annotated:
        ann = get_args(ann)[0]
    return ann


def _keys_of(ann: Any) -> list[str]:
    """The keys a model takes, or those of every model of a union; none for the rest."""
    from typing import Union, get_args, get_origin

    if get_origin(ann) in (Union, UnionType):
        return sorted(
            {
                f
                for a in get_args(ann)
                if isinstance(a, type) and issubclass(a, BaseModel)
                for f in a.model_fields
            }
        )
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return list(ann.model_fields)
    return []


def _friendly(err: dict[str, Any], loc: tuple[Any, ...], root: type[BaseModel]) -> str:
    kind = err["type"]
    top = "policy" if root is Policy else root.__name__.lower()
    where = ".".join(str(p) for p in loc) or top
    if kind == "extra_forbidden":
        return _unknown_key(loc, root, top)
    if (indent := _mis_indented(kind, err, loc, root, where)) is not None:
        return indent
    if kind == "missing":
        return f"{where}: required key missing"
    if (shape := _wrong_shape(kind, err, loc, root, where)) is not None:
        return shape
    if kind == "union_tag_invalid":
        return _unknown_kind(err, where)
    return _plain(err, where)


def _unknown_kind(err: dict[str, Any], where: str) -> str:
    got = str((err.get("input") or {}).get("kind"))
    kinds = [k.strip(" '") for k in str(err.get("ctx", {}).get("expected_tags", "")).split(",")]
    near = difflib.get_close_matches(got, kinds, n=1, cutoff=0.75)
    tail = f"; did you mean {near[0]!r}?" if near else ""
    return f"{where}: kind {got!r} is not one of {', '.join(kinds)}{tail}"


def _plain(err: dict[str, Any], where: str) -> str:
    """pydantic's own message, without its prefix, with the value when it says more."""
    msg = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    shown = "" if isinstance(value, dict | list) or value is None else f" (got {value!r})"
    if repr(value) in msg:
        shown = ""
    return f"{where}: {msg}{shown}"


def _unknown_key(loc: tuple[Any, ...], root: type[BaseModel], top: str) -> str:
    key, here = str(loc[-1]), loc[:-1]
    allowed = _fields_at(here, root)
    hint = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    # a key of a section written beside it, not under it: indentation, not spelling
    owner = next((a for a in allowed if key in _fields_at((*here, a), root)), None)
    if hint:
        did = f"; did you mean {hint[0]!r}?"
    elif owner is not None:
        did = f"; it is a key of {owner!r}: indent it under that key"
    else:
        did = f"; allowed here: {', '.join(allowed)}" if allowed else ""
    return f"unknown key {key!r} in {'.'.join(str(p) for p in here) or top}{did}"


def _mis_indented(
    kind: str, err: dict[str, Any], loc: tuple[Any, ...], root: type[BaseModel], where: str
) -> str | None:
    """A section left empty (its keys not indented under it), or a key written where a
    named entry belongs: both read as a wrong type, both are indentation."""
    if kind not in ("model_type", "dict_type") or not loc:
        return None
    if err.get("input") is None:
        return f"{where}: empty; the keys of {str(loc[-1])!r} go on the lines below it, indented"
    if isinstance(loc[-1], str) and loc[-1] in _fields_at(loc, root):
        return (
            f"{where}: {str(loc[-1])!r} is a key of each entry here, not an entry: indent it "
            "under one of them"
        )
    return None


def _wrong_shape(
    kind: str, err: dict[str, Any], loc: tuple[Any, ...], root: type[BaseModel], where: str
) -> str | None:
    """A value where a section of settings belongs (`preempt: true`), or a mapping where
    a list belongs (`features: {source: …}`): say what to write instead."""
    value, last = err.get("input"), str(loc[-1]) if loc else ""
    if kind in ("model_type", "dict_type") and not isinstance(value, dict | list):
        keys = _fields_at(loc, root)
        switch = "enabled" if "enabled" in keys and isinstance(value, bool) else None
        example = f"{last}: {{{switch}: {str(value).lower()}}}" if switch else f"{last}: {{…}}"
        listed = f" ({', '.join(keys)})" if keys else ""
        return f"{where}: {value!r} where its settings{listed} belong: write e.g. {example}"
    if kind == "list_type" and isinstance(value, dict):
        inner = ", ".join(f"{k}: {v}" for k, v in value.items())
        example = f"e.g. {last}: [{{{inner}}}]" if inner else "each on a line starting with '- '"
        return f"{where}: a mapping where a list belongs: write its entries as a list, {example}"
    return None


_KINDS = frozenset((*TOOLS, *OTHER_KINDS))


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic puts the union tag (e.g. 'flexlm') and validator names into loc
    out = []
    for p in loc:
        if isinstance(p, str) and (p in _KINDS or p.startswith("function-")):
            continue
        out.append(p)
    return tuple(out)


Locate = Callable[[tuple[Any, ...]], tuple[int, int]]


def parse_model(text: str, name: str, model: type[M], what: str) -> tuple[M, Locate]:
    """YAML text into `model`, every problem as file:line:col (`PolicyErrors`); also a
    function that gives the line and column of a path in the text."""
    try:
        node, data = _load_yaml(text, name, what)
        values: dict[tuple[Any, ...], tuple[int, int]] = {}
        keys: dict[tuple[Any, ...], tuple[int, int]] = {}
        _positions(node, (), values, keys)
    except RecursionError:  # the YAML reader and our walk recurse per level
        raise PolicyError(f"{name}: nested too deep to be a policy") from None

    def at(loc: tuple[Any, ...], key: bool = False) -> tuple[int, int]:
        if key and loc in keys:
            return keys[loc]
        while loc and loc not in values:
            loc = loc[:-1]
        return values.get(loc, (1, 1))

    try:
        return model.model_validate(data), at
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = _clean_loc(tuple(err["loc"]))
            line, col = at(loc, key=err["type"] in ("extra_forbidden",))
            problems.append(Problem(name, line, col, _friendly(dict(err), loc, model)))
        raise PolicyErrors(sorted(set(problems), key=lambda p: (p.line, p.col))) from e


def _load_yaml(text: str, name: str, what: str) -> tuple[yaml.Node, dict[str, Any]]:
    """The YAML's node tree and data: never an alias bomb, a duplicate key or a non-mapping."""
    try:
        node = yaml.compose(text, Loader=LOADER)
        # aliases share nodes: size them before anything walks the expanded tree
        # (no alias without a `*`: a plain policy, however large, is not walked twice)
        bomb = node is not None and "*" in text and _alias_growth(node) > MAX_NODES
        data = {} if bomb or node is None else LOADER("").construct_document(node)
    except yaml.MarkedYAMLError as e:
        raise PolicyErrors([_syntax_problem(e, text, name)]) from e
    except yaml.YAMLError as e:
        raise PolicyErrors([Problem(name, 1, 1, f"YAML: {e}")]) from e
    if bomb:
        raise PolicyErrors(
            [
                Problem(
                    name,
                    1,
                    1,
                    f"YAML: aliases add more than {MAX_NODES} values to this "
                    "policy; a policy needs nowhere near that many (an alias bomb?)",
                )
            ]
        )
    if node is None or not isinstance(data, dict):
        raise PolicyErrors([Problem(name, 1, 1, what)])
    if (other := _another_document(data)) is not None:
        raise PolicyErrors([Problem(name, 1, 1, other)])
    duplicates = _duplicate_keys(node, name, set())
    if duplicates:
        raise PolicyErrors(duplicates)
    return node, data


def _another_document(data: dict[str, Any]) -> str | None:
    """What a file is that license-sync wrote but is not a policy, when it is one of those."""
    if "$schema" in data or "$defs" in data:
        return (
            "this is the policy's JSON Schema (`license-sync schema`), not a policy: pass "
            "the policy's YAML file; editors read the schema through its modeline"
        )
    if {"version", "limits", "jobs"} <= data.keys():
        return (
            "this is a plan (`license-sync plan --format json`), not a policy: pass the "
            "policy's YAML file the plan was made from"
        )
    return None


def _undefined_alias(e: yaml.MarkedYAMLError, text: str) -> str | None:
    """An alias with no anchor, or one used above its anchor (YAML reads top to bottom)."""
    mark = e.problem_mark
    if "undefined alias" not in str(e.problem) or mark is None:
        return None
    found = re.match(r"\*([^\s,\]}]+)", text[mark.index :])
    if found is None:
        return None
    alias = found.group(1)
    anchor = re.search(rf"&{re.escape(alias)}(?=[\s,\]}}]|$)", text[mark.index :])
    if anchor is None:
        return f"YAML: alias *{alias} names no anchor: no &{alias} is defined in this file"
    line = text.count("\n", 0, mark.index + anchor.start()) + 1
    return (
        f"YAML: alias *{alias} is used before its anchor &{alias} (line {line}): "
        f"YAML reads top to bottom, so move the &{alias} entry above its first use"
    )


def _syntax_problem(e: yaml.MarkedYAMLError, text: str, name: str) -> Problem:
    """Where YAML's parser stopped and why; a tab in the indent said as such."""
    mark = e.problem_mark or e.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = str(e.problem or e)
    lines = text.splitlines()
    where = lines[line - 1] if 0 < line <= len(lines) else ""
    if "'\\t'" in problem or "\t" in problem or "\t" in where[: col + 1]:
        problem += " (indent with spaces: YAML does not take tabs)"
    return Problem(name, line, col, _undefined_alias(e, text) or f"YAML: {problem}")


def _duplicate_keys(node: yaml.Node, name: str, seen: set[int]) -> list[Problem]:
    """A key given twice in one mapping: YAML keeps the last silently, a policy must not
    (a second `nuke:` pool would replace the first)."""
    if id(node) in seen:
        return []
    seen.add(id(node))
    out: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                line = key.start_mark.line + 1
                if key.value in first:
                    out.append(
                        Problem(
                            name,
                            line,
                            key.start_mark.column + 1,
                            f"duplicate key {key.value!r} (first at line {first[key.value]}): "
                            "give it once",
                        )
                    )
                first.setdefault(key.value, line)
            out += _duplicate_keys(value, name, seen)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            out += _duplicate_keys(item, name, seen)
    return out
