"""antal installs as ONE import package and leaves other packages alone.

The card's folders (engine/, catalog/, privacy/, api/, fixtures/synthetic/) are mapped under
the `antal` namespace by setuptools' package-dir; these tests build the real wheel and look
inside it, and install it beside the PyPI package `fixtures` (a name antal once clobbered).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Build from a copy of the tracked files, so the build leaves nothing in the work tree
    # that another test (or the next build) could pick up.
    src = out / "src"
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for f in filter(None, files):
        rel = Path(f.decode())
        if not (ROOT / rel).is_file():
            continue  # deleted in the work tree, not yet committed
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes((ROOT / rel).read_bytes())
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
    )
    (whl,) = out.glob("antal-*.whl")
    return whl


def test_wheel_has_one_top_level_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert top == {"antal"}
    # the card's folders are all there, under the one name, with their data files
    for inside in (
        "antal/engine/__init__.py",
        "antal/engine/language/cohort.lark",
        "antal/catalog/registers/npr.yaml",
        "antal/privacy/__init__.py",
        "antal/privacy/combine_moments.json",  # the hub's table of error moments
        "antal/api/cli/__init__.py",
        "antal/api/routes/admin.py",
        "antal/api/usecases.py",
        "antal/api/web/templates/workbench.html.j2",
        "antal/api/web/static/vendor/editor.js",
        "antal/api/web/static/vendor/swagger-ui/swagger-ui-bundle.js",
        "antal/synthetic/generate.py",
    ):
        assert inside in names
    assert not any(n.startswith("antal/__init__") for n in names)  # a namespace: no owner file
    # every module of the mapped folders is in the wheel: a new subpackage must be listed in
    # pyproject.toml's `packages`, or it would be silently missing from an install
    mapped = {"engine": "antal/engine", "catalog": "antal/catalog", "privacy": "antal/privacy",
              "api": "antal/api", "fixtures/synthetic": "antal/synthetic"}  # fmt: skip
    tracked = subprocess.run(
        ["git", "ls-files", *mapped], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in tracked:
        if rel.startswith("api/web/frontend/"):
            continue  # the workbench's build tools (node, make_map.py), run once, not shipped
        if rel.endswith((".py", ".lark", ".yaml")) and (ROOT / rel).is_file():
            folder = next(
                f for f in sorted(mapped, key=len, reverse=True) if rel.startswith(f + "/")
            )
            assert mapped[folder] + rel[len(folder) :] in names, rel
    entry = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    )
    assert b"antal = antal.api.cli:app" in entry


@pytest.mark.slow
def test_installs_beside_pypi_fixtures(wheel: Path, tmp_path: Path) -> None:
    """`fixtures` (testtools' package) keeps working with antal installed and after removal."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(py), *args], capture_output=True, text=True, env=env, cwd=tmp_path
        )

    r = run("-m", "pip", "install", "-q", "fixtures")
    assert r.returncode == 0, r.stderr
    check_fixtures = "import fixtures; assert hasattr(fixtures, 'Fixture'), fixtures.__file__"
    # antal's own dependencies are not needed to look at what its wheel puts on disk
    r = run("-m", "pip", "install", "-q", "--no-deps", str(wheel))
    assert r.returncode == 0, r.stderr
    assert run("-c", check_fixtures).returncode == 0
    r = run("-c", "import importlib.util as u; print(u.find_spec('antal.engine').origin)")
    assert r.returncode == 0 and "site-packages/antal/engine" in r.stdout, r.stderr
    r = run("-m", "pip", "uninstall", "-y", "-q", "antal")
    assert r.returncode == 0, r.stderr
    r = run("-c", check_fixtures)
    assert r.returncode == 0, r.stderr
