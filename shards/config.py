"""Typed configuration: one mechanism behind the build config and the trainer config.

A config is a tree of pydantic models (:class:`Section`), each field with its type and its
default: the models are the one place where a default lives. A YAML file gives some of the
values and ``--set a.b=value`` overrides (``value`` parsed as YAML) apply after it, in order.
Every unknown or mistyped key stops the load with one line naming the file or the override and
the key (:class:`ConfigError`). :func:`load` returns the validated model; ``model_dump()`` gives
the plain dict that the code indexes (``cfg["train"]["steps"]``) and that travels with
checkpoints and manifests as JSON.

It lives in ``shards/`` because that is the lowest package both the build (``pipeline/``) and
the trainer import.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "ConfigError",
    "Number",
    "Section",
    "Field",
    "load",
    "read_yaml",
    "set_dotted",
]

M = TypeVar("M", bound=BaseModel)

#: A number kept as written: ``30`` stays an int and ``30.0`` a float (pydantic's "smart" union
#: picks the exact type). For values hashed as JSON (the sampling plan's digest), where coercing
#: 30 to 30.0 would change the hash.
Number = int | float


class ConfigError(ValueError):
    """A config file or override is unusable; the message is one line saying where and why."""


class Section(BaseModel):
    """One config section: unknown keys are errors, values are checked against their types."""

    model_config = ConfigDict(extra="forbid")


def read_yaml(path: str | Path) -> dict:
    """A config file's mapping (an empty file is an empty mapping)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections")
    return data


def _hint(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _section_type(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    ann = model.model_fields[name].annotation
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _explain(err: ValidationError, model: type[BaseModel]) -> str:
    """One line for the first problem: the dotted key and what is wrong with it."""
    e = err.errors()[0]
    parts, node = [], model
    for p in e["loc"]:  # keep the loc's field names (drop pydantic's union-member tags)
        if node is None or not isinstance(p, str) or p not in node.model_fields:
            if node is not None and e["type"] == "extra_forbidden" and p == e["loc"][-1]:
                parts.append(str(p))
            elif isinstance(p, int):
                parts.append(f"[{p}]")
            break
        parts.append(p)
        node = _section_type(node, p)
    key = ".".join(parts).replace(".[", "[") or "(top level)"
    if e["type"] == "extra_forbidden":
        known = node.model_fields if node is not None else ()
        return f"unknown key {key!r}{_hint(parts[-1], known)}"
    more = len(err.errors()) - 1
    msg = e["msg"].removeprefix("Value error, ")
    got = e.get("input")
    tail = f" (got {got!r})" if not isinstance(got, dict) else ""
    return f"{key}: {msg}{tail}" + (f"; {more} more problems" if more > 1 else "")


def set_dotted(raw: dict, item: str, model: type[BaseModel]) -> None:
    """Apply one ``a.b.c=value`` override to the raw mapping ``raw`` in place; the key must
    name a field of ``model`` (``value`` is parsed as YAML)."""
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected key.path=value")
    parts = key.split(".")
    node: Any = raw
    for i, p in enumerate(parts):
        here = ".".join(parts[: i + 1])
        if model is None or p not in model.model_fields:
            known = model.model_fields if model is not None else ()
            raise ConfigError(f"override {item!r}: unknown key {here!r}{_hint(p, known)}")
        if i == len(parts) - 1:
            break
        sub = _section_type(model, p)
        if sub is None:
            raise ConfigError(f"override {item!r}: {here!r} is a value, not a section")
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node, model = node[p], sub
    try:
        node[parts[-1]] = yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: invalid YAML ({str(e).splitlines()[0]})") from None


def validate(model: type[M], raw: dict, where: str) -> M:
    """``model`` from ``raw``; a problem is one :class:`ConfigError` line starting ``where``."""
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{where}: {_explain(e, model)}") from None


def load(model: type[M], path: str | Path | None = None, overrides: list[str] | tuple = ()) -> M:
    """``model``'s defaults, updated by the YAML file at ``path``, then by each ``a.b=value``
    of ``overrides`` in order. The file is checked on its own first, then every override, so
    an error names the file or the override it comes from."""
    raw: dict = {}
    if path is not None:
        raw = read_yaml(path)
        validate(model, raw, str(path))
    for item in overrides or ():
        set_dotted(raw, item, model)
        validate(model, raw, f"override {item!r}")
    return validate(model, raw, str(path) if path is not None else "config")
