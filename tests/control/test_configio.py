import dataclasses

import pytest

from fastd3pg.control import configio
from fastd3pg.control.configio import ConfigError, apply_overrides, overrides_from_file


@dataclasses.dataclass(frozen=True)
class Demo:
    lr: float = 1e-3
    batch: int = 64
    layer_norm: bool = True
    reg: str = "l2"
    hidden: tuple = (64, 64)

    def validate(self):
        if self.batch < 1:
            raise ConfigError("batch must be >= 1")


def test_overrides_are_type_checked_and_validated():
    cfg = apply_overrides(Demo(), {"lr": 1, "batch": 32.0, "hidden": [8, 8]})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.batch == 32 and cfg.hidden == (8, 8)
    with pytest.raises(ConfigError, match="unknown config key 'bogus'"):
        apply_overrides(Demo(), {"bogus": 1})
    with pytest.raises(ConfigError, match="'batch' must be int"):
        apply_overrides(Demo(), {"batch": "many"})
    with pytest.raises(ConfigError, match="'layer_norm' must be bool"):
        apply_overrides(Demo(), {"layer_norm": 1})
    with pytest.raises(ConfigError, match="finite"):
        apply_overrides(Demo(), {"lr": float("nan")})
    with pytest.raises(ConfigError, match="batch must be >= 1"):
        apply_overrides(Demo(), {"batch": 0})


def test_toml_file_top_level_then_algorithm_table(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('lr = 0.5\nbatch = 8\n\n[d3pg]\nbatch = 16  # per algorithm\nreg = "cosine"\n')
    assert overrides_from_file(path, "d3pg", ["d3pg", "ddpg"]) == {"lr": 0.5, "batch": 16, "reg": "cosine"}
    assert overrides_from_file(path, "ddpg", ["d3pg", "ddpg"]) == {"lr": 0.5, "batch": 8}


def test_broken_and_missing_files_give_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        configio.load_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("lr = = 3\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        configio.load_toml(bad)
    other = tmp_path / "other.toml"
    other.write_text("[nosuchalgo]\nlr = 1\n")
    with pytest.raises(ConfigError, match="unknown table"):
        overrides_from_file(other, "d3pg", ["d3pg"])


def test_fallback_parser_reads_the_subset_we_use():
    text = '# c\nlr = 1e-4\nsteps = 20_000\nflag = true\nname = "a # b"\nhidden = [64, 64]\n[d3pg]\nw1 = 0.5\n'
    assert configio._parse_simple_toml(text) == {
        "lr": 1e-4, "steps": 20000, "flag": True, "name": "a # b", "hidden": [64, 64],
        "d3pg": {"w1": 0.5},
    }
