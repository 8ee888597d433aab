"""The package stands alone: its wheel ships every file of attnscore/ (modules, subpackages and
package data), and every module imports from a folder holding only the installed wheel, run from
elsewhere, with the checkout on no path."""

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT

pytestmark = pytest.mark.slow


def package_files(root: Path) -> set[str]:
    """The files of the attnscore package in the checkout, as the wheel names them."""
    return {
        path.relative_to(root).as_posix()
        for path in (root / "attnscore").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def module_names(wheel_files) -> list[str]:
    """Every module and package the wheel holds, dotted: attnscore/x/__init__.py is attnscore.x."""
    names = []
    for name in wheel_files:
        if name.endswith(".py"):
            parts = name.removesuffix(".py").split("/")
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built offline from a copy of the package (a build writes build/ and egg-info
    beside the sources it builds)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT / "attnscore", source / "attnscore", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", source)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", tmp / "dist", source],
                   check=True, timeout=300)  # fmt: skip
    (built,) = (tmp / "dist").glob("attnscore-*.whl")
    return built


def test_the_wheel_ships_every_file_of_the_package(wheel):
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("attnscore/")}
    missing = package_files(ROOT) - shipped
    assert not missing, (
        f"the wheel lacks {sorted(missing)}: a folder of modules needs an __init__.py, a data file a pattern "
        "in pyproject.toml's [tool.setuptools.package-data]"
    )
    assert "attnscore/schemas/config.schema.yaml" in shipped


def test_every_module_imports_from_the_installed_wheel_alone(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", "install", "--no-deps",
                    "--no-index", "--target", site, wheel], check=True, timeout=300)  # fmt: skip
    with zipfile.ZipFile(wheel) as archive:
        modules = module_names(archive.namelist())
    assert "attnscore.config" in modules and "attnscore.train" in modules
    # -I -S: neither the working folder nor site-packages' .pth files (the venv's editable install
    # of the checkout) are on the path; the dependencies come from site-packages, after the wheel.
    dependencies = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    program = "\n".join([
        "import importlib, sys",
        f"sys.path[:0] = [{str(site)!r}]",
        f"sys.path += {dependencies!r}",
        f"for name in {modules!r}:",
        "    importlib.import_module(name)",
        "import attnscore",
        "print(attnscore.__file__)",
    ])  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([sys.executable, "-I", "-S", "-c", program], cwd=elsewhere, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert Path(result.stdout.strip()).is_relative_to(site)
