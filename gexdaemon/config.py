"""Load the configuration: embedded defaults, then config files, then the environment.

Order (later wins):
1. the embedded defaults (`gexdaemon.core.settings.Settings()`, the same values as
   `config.toml` at the repository root);
2. config files: `--config PATH` (repeatable) or `GEXD_CONFIG` (paths separated by
   ':'), else `./config.toml` if it exists. A file needs only the keys it changes;
3. `GEXD__SECTION__KEY=value` environment variables (the value is read as TOML, so
   `GEXD__DAEMON__WORKERS=8` is a number and `GEXD__SYMBOLS__EXTRA='["ABC"]'` a list;
   anything that is not valid TOML is taken as a string);
4. `GEXD_DATA_DIR` / `--data-dir` and `GEXD_SOCKET` / `--socket`.

Relative paths resolve against the folder of the file that set them (the current
directory for defaults and the environment). Every error names the key, the
reason and where the value came from.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import socket
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from gexdaemon.core.errors import ConfigError, Problem
from gexdaemon.core.models import DomainContext
from gexdaemon.core.settings import Settings
from gexdaemon.core.symbols import BUNDLED_OPTIONABLE, normalize_symbol

ENV_PREFIX = "GEXD__"
DEFAULT_CONFIG_NAME = "config.toml"
# sun_path is 108 bytes on Linux; keep a margin for the NUL and odd filesystems.
MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class Config:
    """Validated settings plus the resolved paths the daemon and clients use."""

    settings: Settings
    files: tuple[Path, ...]
    data_dir: Path
    socket_path: Path
    drop_dir: Path
    duckdb_path: Path

    @property
    def lake_dir(self) -> Path:
        """The Parquet lake: `[cluster] lake_dir` in cluster mode (every node shares it),
        else `<data_dir>/gex`."""
        cluster = self.settings.cluster
        if cluster.enabled and cluster.lake_dir:
            return Path(cluster.lake_dir).expanduser()
        return self.data_dir / "gex"

    @property
    def archive_dir(self) -> Path:
        """Finished jobs moved out of DuckDB: `<data_dir>/archive`; in cluster mode a folder
        per node in the shared lake, `<lake_dir>/archive/node=<id>`, read by every node."""
        cluster = self.settings.cluster
        if cluster.enabled and cluster.lake_dir:
            node = cluster.node_id or socket.gethostname()
            return self.lake_dir / "archive" / f"node={node.replace('/', '_')}"
        return self.data_dir / "archive"

    def domain_context(self, **overrides: Any) -> DomainContext:
        symbols = self.settings.symbols
        extra = frozenset(normalize_symbol(s) for s in symbols.extra)
        values: dict[str, Any] = {
            "optionable": BUNDLED_OPTIONABLE | extra,
            "allow_any_symbol": symbols.allow_any,
            "max_retries": self.settings.retry.max_retries,
        }
        values.update(overrides)
        return DomainContext(**values)


def load_config(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    socket: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Config:
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    files = _config_files(paths, env, cwd)

    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    base_dirs: dict[str, Path] = {}
    for file in files:
        layer = _read_toml(file)
        _merge(merged, layer, origins, base_dirs, origin=str(file), base=file.parent)
    _merge(merged, _env_layer(env), origins, base_dirs, origin="environment", base=cwd)

    settings = _validate(merged, origins)

    data_dir_raw = data_dir if data_dir is not None else env.get("GEXD_DATA_DIR") or None
    if data_dir_raw is not None:
        resolved_data = _resolve(str(data_dir_raw), cwd)
    else:
        resolved_data = _resolve(settings.daemon.data_dir, base_dirs.get("daemon.data_dir", cwd))

    socket_raw = socket if socket is not None else env.get("GEXD_SOCKET") or None
    if socket_raw is not None:
        socket_path = _resolve(str(socket_raw), cwd)
    elif settings.daemon.socket:
        socket_path = _resolve(settings.daemon.socket, base_dirs.get("daemon.socket", cwd))
    else:
        socket_path = default_socket_path(resolved_data, env)

    drop = (
        _resolve(settings.daemon.drop_dir, base_dirs.get("daemon.drop_dir", cwd))
        if settings.daemon.drop_dir
        else resolved_data / "drop"
    )
    if len(os.fsencode(socket_path)) > MAX_SOCKET_PATH:
        raise ConfigError(
            f"socket path {socket_path} is {len(os.fsencode(socket_path))} bytes; Unix sockets "
            f"allow about {MAX_SOCKET_PATH}. Set [daemon] socket or GEXD_SOCKET to a shorter path."
        )
    return Config(
        settings=settings,
        files=tuple(files),
        data_dir=resolved_data,
        socket_path=socket_path,
        drop_dir=drop,
        duckdb_path=resolved_data / settings.storage.duckdb_file,
    )


def default_socket_path(data_dir: Path, env: Mapping[str, str] | None = None) -> Path:
    """`<data_dir>/run/gexd.sock`, or a short per-data-dir path when that is too long."""
    env = os.environ if env is None else env
    candidate = data_dir / "run" / "gexd.sock"
    if len(os.fsencode(candidate)) <= MAX_SOCKET_PATH:
        return candidate
    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:12]
    runtime = env.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "gexd" if runtime else Path("/tmp") / f"gexd-{os.getuid()}"  # noqa: S108
    return base / f"{digest}.sock"


# ---------------------------------------------------------------------------


def _config_files(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str] | None,
    env: Mapping[str, str],
    cwd: Path,
) -> list[Path]:
    chosen: list[Path]
    if paths is not None and not isinstance(paths, str | os.PathLike):
        chosen = [_resolve(str(p), cwd) for p in paths]
    elif paths is not None:
        chosen = [_resolve(str(paths), cwd)]
    elif env.get("GEXD_CONFIG"):
        chosen = [_resolve(p, cwd) for p in env["GEXD_CONFIG"].split(os.pathsep) if p]
    else:
        local = cwd / DEFAULT_CONFIG_NAME
        return [local] if local.is_file() else []
    for p in chosen:
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist (from --config or GEXD_CONFIG)")
    return chosen


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def _env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k]
        if len(keys) < 2:
            raise ConfigError(
                f"{name}: use GEXD__SECTION__KEY=value (for example GEXD__DAEMON__WORKERS=8)"
            )
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = layer
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return layer


def _merge(
    into: dict[str, Any],
    layer: Mapping[str, Any],
    origins: dict[str, str],
    base_dirs: dict[str, Path],
    *,
    origin: str,
    base: Path,
    prefix: str = "",
) -> None:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(
                into[key], value, origins, base_dirs, origin=origin, base=base, prefix=f"{dotted}."
            )
        elif isinstance(value, Mapping):
            into[key] = {}
            _merge(
                into[key], value, origins, base_dirs, origin=origin, base=base, prefix=f"{dotted}."
            )
        else:
            into[key] = value
            origins[dotted] = origin
            base_dirs[dotted] = base


def _validate(merged: dict[str, Any], origins: Mapping[str, str]) -> Settings:
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        problems = [_describe(err, origins) for err in exc.errors(include_url=False)]
        head = "; ".join(str(p) for p in problems[:5])
        raise ConfigError(f"invalid configuration: {head}", details=problems) from None


def _describe(err: Any, origins: Mapping[str, str]) -> Problem:
    loc = [str(p) for p in err.get("loc", ())]
    dotted = ".".join(loc)
    where = _origin_for(dotted, origins)
    key = f"[{'.'.join(loc[:-1])}] {loc[-1]}" if len(loc) > 1 else (loc[0] if loc else "(root)")
    if err.get("type") == "extra_forbidden":
        known = _known_keys(loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = (
            f"; did you mean {close[0]!r}?"
            if close
            else (f"; known keys: {', '.join(known)}" if known else "")
        )
        message = f"unknown key{hint}"
    else:
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        raw = err.get("input")
        if isinstance(raw, str | int | float | bool):
            message = f"{message} (got {raw!r})"
    return Problem(
        path=key,
        message=f"{message} [from {where}]" if where else message,
        rule=str(err.get("type", "")),
    )


def _origin_for(dotted: str, origins: Mapping[str, str]) -> str:
    while dotted:
        if dotted in origins:
            return origins[dotted]
        found = [o for k, o in origins.items() if k.startswith(dotted + ".")]
        if found:
            return found[-1]
        dotted = dotted.rpartition(".")[0]
    return ""


def _known_keys(section: Iterable[str]) -> list[str]:
    model: type[BaseModel] = Settings
    for name in section:
        field = model.model_fields.get(name)
        annotation = getattr(field, "annotation", None) if field else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            return []
    return list(model.model_fields)


def _resolve(raw: str, base: Path) -> Path:
    path = Path(os.path.expandvars(raw)).expanduser()
    return path if path.is_absolute() else (base / path).resolve()
