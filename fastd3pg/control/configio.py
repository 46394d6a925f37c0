"""Configuration as data: algorithm dataclasses filled from defaults, TOML files and overrides.

A config file is TOML. Top-level keys apply to every algorithm; a table named after an
algorithm (``[d3pg]``, ``[ddpg]``, ...) applies to that algorithm only and wins over the top
level. Unknown keys and values of the wrong type are errors, never silently ignored.
"""

import dataclasses
import math
import re
from importlib import resources
from pathlib import Path

try:  # Python >= 3.11
    import tomllib as _toml
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    _toml = None


class ConfigError(ValueError):
    """A configuration that cannot be used; the message says why."""


def load_toml(path) -> dict:
    """The TOML file at ``path`` (a path, or a package resource) as a dict."""
    path = path if hasattr(path, "read_text") else Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from None
    try:
        return _toml.loads(text) if _toml is not None else _parse_simple_toml(text)
    except ValueError as err:  # tomllib.TOMLDecodeError is a ValueError
        raise ConfigError(f"invalid TOML in {path}: {err}") from None


_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def _parse_simple_toml(text: str) -> dict:
    """The TOML subset our config files use (tables, and string/number/bool/array values),
    for Python 3.10, which has no ``tomllib``."""
    root: dict = {}
    table = root
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if '"' not in raw else raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1].strip()
            if not _KEY.match(name):
                raise ValueError(f"line {lineno}: bad table name {name!r}")
            table = root.setdefault(name, {})
            continue
        if "=" not in line:
            raise ValueError(f"line {lineno}: expected 'key = value'")
        key, value = (part.strip() for part in line.split("=", 1))
        if not _KEY.match(key):
            raise ValueError(f"line {lineno}: bad key {key!r}")
        table[key] = _parse_value(value, lineno)
    return root


def _parse_value(value: str, lineno: int):
    if value.startswith('"'):
        end = value.find('"', 1)
        if end < 0:
            raise ValueError(f"line {lineno}: unterminated string")
        return value[1:end]
    value = value.split("#", 1)[0].strip()
    if value in ("true", "false"):
        return value == "true"
    if value.startswith("[") and value.endswith("]"):
        inner = value[1:-1].strip()
        return [_parse_value(v.strip(), lineno) for v in inner.split(",") if v.strip()] if inner else []
    try:
        return int(value.replace("_", ""))
    except ValueError:
        pass
    try:
        return float(value.replace("_", ""))
    except ValueError:
        raise ValueError(f"line {lineno}: cannot parse value {value!r}") from None


def _coerce(name: str, value, default):
    kind = type(default)
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
            if math.isfinite(value):
                return value
            raise ConfigError(f"config key {name!r} must be finite, got {value}")
    elif kind is str:
        if isinstance(value, str):
            return value
    elif kind is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(value)
    raise ConfigError(f"config key {name!r} must be {kind.__name__}, got {value!r}")


def apply_overrides(config, overrides: dict, source: str = "overrides"):
    """A copy of the dataclass ``config`` with ``overrides`` applied, type-checked, then
    validated by the config's own ``validate()`` if it has one."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    values = {}
    for key, value in overrides.items():
        key = key.replace("-", "_")
        if key not in fields:
            raise ConfigError(
                f"unknown config key {key!r} in {source}; valid keys: {', '.join(sorted(fields))}"
            )
        values[key] = _coerce(key, value, getattr(config, key))
    new = dataclasses.replace(config, **values)
    if hasattr(new, "validate"):
        new.validate()
    return new


def overrides_from_file(path, algo: str, algos) -> dict:
    """The overrides a TOML file gives for ``algo``: its top level, then its ``[algo]`` table."""
    data = load_toml(path)
    top = {k: v for k, v in data.items() if not isinstance(v, dict)}
    for name, value in data.items():
        if isinstance(value, dict) and name not in algos:
            raise ConfigError(
                f"{path}: unknown table [{name}]; tables name algorithms: {', '.join(algos)}"
            )
    top.update(data.get(algo, {}))
    return top


def tuned_config(env_name: str):
    """The tuned settings of task ``env_name``, ``fastd3pg/configs/<env_name>.toml``, read as
    package data (so an installed package or a wheel finds them too): ``(resource, name)``,
    where ``name`` is the package-relative name recorded in ``config.json``, or
    ``(None, name)`` when the task has no such file."""
    name = f"fastd3pg/configs/{env_name}.toml"
    resource = resources.files("fastd3pg").joinpath("configs", f"{env_name}.toml")
    return (resource if resource.is_file() else None), name


def require(checks):
    """Raise :class:`ConfigError` for the first ``(ok, message)`` pair that is not ok."""
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"invalid config: {message}")
