"""Configuration: defaults, partial files, environment overrides, and errors that name the key."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexdaemon.config import MAX_SOCKET_PATH, load_config
from gexdaemon.core.errors import ConfigError
from gexdaemon.core.settings import Settings
from tests.conftest import REPO

REPO_CONFIG = REPO / "config.toml"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_repository_config_equals_the_embedded_defaults(tmp_path: Path) -> None:
    with REPO_CONFIG.open("rb") as fh:
        from_file = Settings.model_validate(tomllib.load(fh))
    assert from_file == Settings()
    assert load_config(REPO_CONFIG, env={}, cwd=tmp_path).settings == Settings()


def _keys(model: object, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name in type(model).model_fields:  # type: ignore[attr-defined]
        value = getattr(model, name)
        if hasattr(type(value), "model_fields"):
            out |= _keys(value, f"{prefix}{name}.")
        else:
            out.add(f"{prefix}{name}")
    return out


def test_every_setting_appears_in_config_toml_with_a_comment() -> None:
    lines = REPO_CONFIG.read_text().splitlines()
    section = ""
    commented: set[str] = set()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            section = stripped.strip("[]")
        elif stripped.startswith("[["):
            section = stripped.strip("[]")
            commented.add(section)  # arrays of tables: each member key is checked below
        elif "=" in stripped and not stripped.startswith("#"):
            key = stripped.split("=", 1)[0].strip()
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("#"), f"config.toml line {i + 1}: {key} has no comment above it"
            commented.add(f"{section}.{key}")
    missing = {k for k in _keys(Settings()) if k not in commented}
    assert not missing, f"settings without a commented line in config.toml: {sorted(missing)}"


def test_no_file_gives_defaults_and_paths_under_cwd(tmp_path: Path) -> None:
    cfg = load_config(env={}, cwd=tmp_path)
    assert cfg.files == ()
    assert cfg.data_dir == tmp_path / "var"
    assert cfg.socket_path == tmp_path / "var" / "run" / "gexd.sock"
    assert cfg.drop_dir == tmp_path / "var" / "drop"
    assert cfg.duckdb_path == tmp_path / "var" / "gex.duckdb"


def test_config_toml_in_cwd_is_the_default(tmp_path: Path) -> None:
    write(tmp_path / "config.toml", "[daemon]\nworkers = 7\n")
    assert load_config(env={}, cwd=tmp_path).settings.daemon.workers == 7


def test_a_partial_file_changes_only_its_keys(tmp_path: Path) -> None:
    base = write(tmp_path / "base.toml", "[daemon]\nworkers = 6\n[sla]\ncritical_s = 20\n")
    over = write(tmp_path / "over.toml", "[sla]\ncritical_s = 15\n")
    cfg = load_config([base, over], env={}, cwd=tmp_path)
    assert cfg.settings.daemon.workers == 6
    assert cfg.settings.sla.critical_s == 15
    assert cfg.settings.sla.high_s == 300
    assert cfg.settings.gex == Settings().gex


def test_relative_paths_resolve_against_the_files_folder(tmp_path: Path) -> None:
    folder = tmp_path / "desk"
    folder.mkdir()
    cfg_file = write(folder / "gexd.toml", '[daemon]\ndata_dir = "state"\ndrop_dir = "inbox"\n')
    cfg = load_config(cfg_file, env={}, cwd=tmp_path)
    assert cfg.data_dir == folder / "state"
    assert cfg.drop_dir == folder / "inbox"


def test_environment_overrides(tmp_path: Path) -> None:
    env = {
        "GEXD__DAEMON__WORKERS": "9",
        "GEXD__SYMBOLS__EXTRA": '["ABCD", "_XYZ"]',
        "GEXD__LOGGING__FORMAT": "console",
        "GEXD_DATA_DIR": str(tmp_path / "elsewhere"),
        "GEXD_SOCKET": str(tmp_path / "s.sock"),
    }
    cfg = load_config(env=env, cwd=tmp_path)
    assert cfg.settings.daemon.workers == 9
    assert cfg.settings.symbols.extra == ("ABCD", "_XYZ")
    assert cfg.settings.logging.format == "console"
    assert cfg.data_dir == tmp_path / "elsewhere"
    assert cfg.socket_path == tmp_path / "s.sock"
    assert {"ABCD", "XYZ"} <= cfg.domain_context().optionable


def test_gexd_config_selects_files(tmp_path: Path) -> None:
    a = write(tmp_path / "a.toml", "[daemon]\nworkers = 3\n")
    b = write(tmp_path / "b.toml", "[sla]\nhigh_s = 200\n")
    cfg = load_config(env={"GEXD_CONFIG": f"{a}{os.pathsep}{b}"}, cwd=tmp_path)
    assert (cfg.settings.daemon.workers, cfg.settings.sla.high_s) == (3, 200)


def test_unknown_key_is_named_with_a_suggestion(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.toml", "[daemon]\nwrokers = 3\n")
    with pytest.raises(ConfigError) as exc:
        load_config(bad, env={}, cwd=tmp_path)
    text = str(exc.value)
    assert "[daemon] wrokers" in text and "did you mean 'workers'" in text and str(bad) in text


def test_unknown_section_is_named(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.toml", "[deamon]\nworkers = 3\n")
    with pytest.raises(ConfigError) as exc:
        load_config(bad, env={}, cwd=tmp_path)
    assert "deamon" in str(exc.value) and "unknown key" in str(exc.value)


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[daemon]\nworkers = 0\n", "[daemon] workers", "greater than or equal to 1"),
        ('[daemon]\nworkers = "many"\n', "[daemon] workers", "valid integer"),
        ("[sla]\ncritical_s = 600\n", "sla", "critical_s <= high_s"),
        ('[gex]\nunit = "usd"\n', "[gex] unit", "usd_per_1pct"),
        ("[retry]\nmax_retries = 5\n", "[retry] max_retries", "less than or equal to 3"),
        ("[daemon]\nheartbeat_s = 60\n", "daemon", "must be shorter than lease_s"),
        ('[storage]\nmemory_limit = "lots"\n', "[storage] memory_limit", "pattern"),
    ],
)
def test_invalid_values_name_the_key_the_reason_and_the_file(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    bad = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as exc:
        load_config(bad, env={}, cwd=tmp_path)
    message = str(exc.value)
    assert key in message and reason in message and str(bad) in message


def test_bad_environment_value_names_the_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(env={"GEXD__DAEMON__WORKERS": "-2"}, cwd=tmp_path)
    assert "[daemon] workers" in str(exc.value) and "environment" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        load_config(env={"GEXD__WORKERS": "2"}, cwd=tmp_path)
    assert "GEXD__SECTION__KEY" in str(exc.value)


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.toml", "[daemon]\nworkers = = 3\n")
    with pytest.raises(ConfigError) as exc:
        load_config(bad, env={}, cwd=tmp_path)
    assert str(bad) in str(exc.value) and "line 2" in str(exc.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "nope.toml", env={}, cwd=tmp_path)
    assert "does not exist" in str(exc.value)


def test_long_data_dir_gets_a_short_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    cfg = load_config(env={"GEXD_DATA_DIR": str(deep)}, cwd=tmp_path)
    assert len(os.fsencode(cfg.socket_path)) <= MAX_SOCKET_PATH
    again = load_config(env={"GEXD_DATA_DIR": str(deep)}, cwd=tmp_path)
    assert again.socket_path == cfg.socket_path  # clients find the same path
    with pytest.raises(ConfigError) as exc:
        load_config(env={"GEXD_SOCKET": str(deep / "x.sock")}, cwd=tmp_path)
    assert "shorter path" in str(exc.value)


@given(st.integers(min_value=-10_000, max_value=0))
@settings(max_examples=30, deadline=None)
def test_any_non_positive_worker_count_is_refused_by_name(workers: int) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(env={"GEXD__DAEMON__WORKERS": str(workers)}, cwd=Path("/"))
    assert "[daemon] workers" in str(exc.value)
