"""Dataclass configs: strict construction from dicts, YAML presets and ``key.sub=value`` overrides.

The pattern follows torchtune's config discipline: a config is plain data (nested dataclasses), built
from a YAML preset plus dotted command-line overrides. Construction is strict: unknown keys are rejected
with a "did you mean", values are type-checked against the annotations, and each dataclass validates its
own invariants in ``__post_init__``. A resolved config round-trips through :func:`to_dict` /
:func:`from_dict` unchanged, which is what lets every artifact carry the exact config that produced it.

A field typed with a *dispatching* base class (one defining ``dispatch(data) -> type``) is built as the
subclass chosen from the data, e.g. ``model: {name: cnn, channels: [32, 64]}`` becomes a ``CNNConfig``.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from ready2unlearn.errors import ConfigError

C = TypeVar("C")

#: Field metadata for an optional key added after configs were already written: :func:`to_dict` leaves it
#: out while it holds its default, so earlier cards, resume states and cache keys (hashes of ``to_dict``)
#: still match the configs that produced them.
OMIT_UNSET: Mapping[str, bool] = types.MappingProxyType({"omit_unset": True})


def to_dict(cfg: Any) -> dict[str, Any]:
    """Converts a (nested) config dataclass to plain JSON/YAML-friendly data (minus unset :data:`OMIT_UNSET` keys)."""
    if not dataclasses.is_dataclass(cfg):
        raise TypeError(f"expected a dataclass instance, got {type(cfg).__name__}")
    return {
        f.name: _plain(getattr(cfg, f.name))
        for f in dataclasses.fields(cfg)
        if f.init and not (f.metadata.get("omit_unset") and getattr(cfg, f.name) == f.default)
    }


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def from_dict(cls: type[C], data: Mapping[str, Any] | None, path: str = "") -> C:
    """Builds config ``cls`` from ``data``, rejecting unknown keys and ill-typed values.

    Args:
        cls: The config dataclass type.
        data: Mapping of field names to values; nested dataclasses are given as nested mappings.
        path: Dotted prefix used in error messages (callers normally leave it empty).

    Returns:
        A validated instance of ``cls`` (or of the subclass its ``dispatch`` picks).

    Raises:
        ConfigError: On unknown keys, wrong types or values its validation rejects.
    """
    data = dict(data or {})
    dispatch = getattr(cls, "dispatch", None)
    if callable(dispatch):
        cls = dispatch(data)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, list(fields), n=1)
        hint = f" (did you mean '{path}{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown config key '{path}{key}'{hint}; valid keys: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(value, hints[name], f"{path}{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{path}{e}" if path and not str(e).startswith(path) else str(e)) from None
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"{path.rstrip('.') or cls.__name__}: {e}") from None


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Checks ``value`` against annotation ``tp`` and converts lists/dicts/dataclasses as needed."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{path} must not be null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {value!r} matches none of {tp}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{path} must be one of {list(get_args(tp))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a mapping, got {value!r}")
        return from_dict(tp, value, path + ".")
    if origin in (list, Sequence) or tp is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list, got {value!r}")
        (arg,) = get_args(tp) or (Any,)
        return [_coerce(v, arg, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list, got {value!r}")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{path} must have {len(args)} items, got {len(value)}")
        return tuple(_coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(args, value, strict=True)))
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a mapping, got {value!r}")
        kt, vt = get_args(tp) or (Any, Any)
        return {_coerce(k, kt, path): _coerce(v, vt, f"{path}.{k}") for k, v in value.items()}
    if tp is float:
        # YAML reads "1e-3" as a string; accept ints and numeric strings for floats.
        if isinstance(value, bool):
            raise ConfigError(f"{path} must be a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{path} must be a number, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} must be a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{path} must be {_type_name(tp)}, got {value!r}")
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """Splits ``"a.b=value"`` into ``(["a", "b"], value)``, parsing the value as YAML.

    Raises:
        ConfigError: If the text has no ``=`` or an empty key.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Returns a copy of ``data`` with each ``key.sub=value`` override applied.

    Unknown keys are not detected here but by :func:`from_dict`, which knows the schema.
    """
    out = _deepcopy(data)
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for k in keys[:-1]:
            child = node.get(k)
            if child is None:
                child = node[k] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {k!r} is a value, not a section")
            node = child
        node[keys[-1]] = value
    return out


def _deepcopy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deepcopy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deepcopy(v) for v in data]
    return data


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Reads a YAML mapping from ``path``.

    Raises:
        ConfigError: If the file is missing, unparsable, or not a mapping.
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config file {str(p)!r} is a folder, not a YAML file")
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(p)!r} is not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {str(p)!r} ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(p)!r} is not valid YAML: {e}".splitlines()[0]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping at the top level")
    return data


def load_preset(cls: type[C], group: str, preset: str, overrides: Sequence[str] = ()) -> tuple[C, str]:
    """Builds config ``cls`` from a shipped ``group`` preset (or a YAML file) plus ``key.sub=value`` overrides.

    The one loader every preset-driven runner uses (bench, ready_bench, lm_bench, muse_eval, plan), so a preset
    is found, read and checked the same way everywhere.

    Returns:
        ``(config, path of the YAML file read)``.

    Raises:
        ConfigError: On an unknown preset, key or value.
    """
    path = resolve_preset(group, preset)
    return from_dict(cls, apply_overrides(load_yaml(path), list(overrides))), str(path)


def preset_dir(group: str) -> Path:
    """Directory of the shipped YAML presets for ``group`` (e.g. ``"train"``)."""
    return Path(str(resources.files("ready2unlearn") / "configs" / group))


def list_presets(group: str) -> list[str]:
    """Names of the shipped presets in ``group``, sorted."""
    d = preset_dir(group)
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def resolve_preset(group: str, name_or_path: str) -> Path:
    """Finds a preset by shipped name or by file path.

    Raises:
        ConfigError: If neither a shipped preset nor a file of that name exists.
    """
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p  # a folder or an unreadable file is reported by load_yaml, by name
    shipped = preset_dir(group) / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    names = list_presets(group)
    close = difflib.get_close_matches(name_or_path, names, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ConfigError(f"no {group} preset or YAML file named {name_or_path!r}.{hint} Shipped: {', '.join(names)}.")


def dispatch_by_name(data: Mapping[str, Any], registry: Any, section: str, default: str) -> type:
    """The config class a registry holds for ``data["name"]`` (for a base config's ``dispatch``).

    Args:
        data: The section's plain data.
        registry: A :class:`~ready2unlearn.registry.Registry` whose entries have a ``config_cls``.
        section: The section's name, for messages (``model``, ``method``).
        default: The name to use when ``data`` has none.

    Raises:
        ConfigError: If the name is not a string or not registered.
    """
    name = data.get("name", default)
    if not isinstance(name, str):
        raise ConfigError(f"{section}.name must be a string, got {name!r}")
    return registry.get(name).config_cls


def check(cond: bool, message: str) -> None:
    """Raises :class:`ConfigError` with ``message`` unless ``cond`` holds (validation helper)."""
    if not cond:
        raise ConfigError(message)
