"""The package as users get it: ``python -m fastd3pg``, the wheel's contents, and a
non-editable install in a fresh virtual environment that trains from another directory with
the tuned settings applied.

The tests marked ``packaging`` build a wheel and compile the kernels cold in a new
environment (minutes): the default ``pytest`` run leaves them out, ``.ci/run`` runs them as
their own step (``python -m pytest -m packaging tests/test_packaging.py``).
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from fastd3pg import train
from fastd3pg.physics import make, names

ROOT = Path(__file__).resolve().parent.parent
SMALL = "hidden = [16, 16]\nbatch_size = 16\n"


def test_python_m_fastd3pg_lists_the_version_tasks_and_algorithms():
    import fastd3pg

    result = subprocess.run([sys.executable, "-m", "fastd3pg"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"fastd3pg {fastd3pg.__version__}")
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("  ")}
    for name in names():
        env = make(name)
        assert rows[name][1:5] == [str(env.state_dim), str(env.action_dim), str(env.horizon),
                                   f"{env.dt:g}"]
        assert rows[name][5] == ("yes" if env.differentiable_reward else "no")
    for algo in train.ALGOS:
        assert algo in rows, algo


def _source_copy(dest: Path) -> Path:
    """The files a build reads, copied away from the working tree (no stale build/ folder,
    no caches)."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "fastd3pg", dest / "fastd3pg",
                    ignore=shutil.ignore_patterns("__pycache__", "*.py[cod]"))
    return dest


def _build_wheel(tmp: Path) -> Path:
    src = _source_copy(tmp / "src")
    args = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp / "dist")]
    try:  # build offline with the setuptools at hand when it is recent enough
        import setuptools

        if int(setuptools.__version__.split(".")[0]) >= 77:
            args.append("--no-build-isolation")
    except ImportError:
        pass
    subprocess.run(args + [str(src)], check=True, capture_output=True, timeout=600)
    (wheel,) = (tmp / "dist").glob("fastd3pg-*.whl")
    return wheel


@pytest.mark.packaging
def test_the_wheel_holds_the_package_and_its_data_and_nothing_else(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as z:
        files = set(z.namelist())
    package = {f for f in files if not f.startswith("fastd3pg-")}
    expected = {p.relative_to(ROOT).as_posix() for p in (ROOT / "fastd3pg").rglob("*.py")
                if "__pycache__" not in p.parts}
    expected |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "fastd3pg" / "configs").glob("*.toml")}
    assert package == expected
    assert {f.split("/")[0] for f in files} == {"fastd3pg", wheel.name.split("-py3")[0] + ".dist-info"}
    assert any(f.endswith("licenses/LICENSE") for f in files)


@pytest.mark.packaging
def test_a_non_editable_install_trains_from_elsewhere_with_the_tuned_settings(tmp_path,
                                                                             monkeypatch):
    wheel = _build_wheel(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    str(wheel)], check=True, timeout=300)
    # The dependencies (numpy, numba, ...) are this interpreter's, seen through a .pth file,
    # so that nothing is downloaded; a .pth file's own lines are not processed further, so an
    # editable install of the source tree stays invisible.
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True).stdout
    ours = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    (Path(site.strip()) / "zz_dependencies.pth").write_text("\n".join(ours) + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "small.toml").write_text(SMALL)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "cache")  # a cold cache, removed with tmp_path
    where = subprocess.run([str(python), "-c", "import fastd3pg; print(fastd3pg.__file__)"],
                           cwd=elsewhere, env=env, check=True, capture_output=True, text=True)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout
    result = subprocess.run(
        [str(python), "-m", "fastd3pg.train", "--env", "CartPole", "--algo", "d3pg", "--steps",
         "800", "--config", "small.toml", "--out", "run"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].startswith("compiling kernels, first run only")
    installed = json.loads((elsewhere / "run" / "config.json").read_text())
    assert installed["config_files"] == ["fastd3pg/configs/CartPole.toml", "small.toml"]
    assert installed["config"]["popart"] is False  # CartPole.toml's setting, not the default

    # The same run from the source tree writes the same config.json.
    monkeypatch.chdir(elsewhere)
    train.run(env="CartPole", algo="d3pg", steps=800, out="editable", config="small.toml")
    assert json.loads((elsewhere / "editable" / "config.json").read_text()) == installed
