"""The wheel carries our three packages, dist/ included (setuptools treats a top-level dist/ as build output)."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_all_packages(tmp_path):
    build = pytest.importorskip("build")
    assert build
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("raygrad-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("dist/__init__.py", "dist/comm/__init__.py", "tensor/__init__.py", "tensor/ops/__init__.py",
                     "trainers/__init__.py"):
        assert required in names, f"{required} missing from {wheel.name}"
    assert not any(name.startswith("tests/") for name in names)
    # Nothing may have been written into our dist/ package.
    assert not list((ROOT / "dist").glob("*.whl")) and not list((ROOT / "dist").glob("*.tar.gz"))


def test_import_direction():
    """tensor never imports dist or trainers; dist never imports trainers (DESIGN.md)."""
    import re

    rules = {"tensor": ("dist", "trainers"), "dist": ("trainers",)}
    bad = []
    for package, forbidden in rules.items():
        for path in (ROOT / package).rglob("*.py"):
            for lineno, line in enumerate(path.read_text().splitlines(), 1):
                if re.match(rf"\s*(from|import)\s+({'|'.join(forbidden)})(\.|\s|$)", line):
                    bad.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not bad, "imports against the one-way rule:\n" + "\n".join(bad)
