"""Build Fedra's sdist and wheel, install each in a clean venv, use it outside the checkout.

Run by .ci/run with the project's venv (it needs `build`, in the dev extra):

    .venv/bin/python scripts/check-dist.py

Checks, in about two minutes on 2 cores:

- ``python -m build``: the sdist, then the wheel built from the unpacked sdist (so the sdist
  holds what a build needs);
- the sdist holds the sources, docs, examples, tests, README, CHANGELOG and LICENSE, and nothing
  local or generated (no venv, caches, build output or workspaces);
- the wheel holds the package with its generated protobuf code and ``py.typed``, nothing else;
- for the wheel and for the sdist: a clean venv (``pip install <file>``), then, from a temporary
  folder with ``PYTHONPATH`` unset, ``fedra --help``, ``fedra --version``, the installed
  metadata (version, license, classifiers, extras) and ``fedra simulate`` of hello-numpy.

Everything it writes stays under build/ (ignored by git) and a temporary folder it removes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "dist-check"
#: Folders that must not be anywhere in the sdist, and local ones that must not be at its top.
JUNK = {
    ".venv",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    ".bench-venvs",
    ".git",
    "demo-workspace",
}
TOP_JUNK = {"build", "dist", "workspace", "poc", "ws", ".ci"}
SDIST_NEEDS = [
    "pyproject.toml",
    "README.md",
    "CHANGELOG.md",
    "LICENSE",
    "src/fedra/__init__.py",
    "src/fedra/py.typed",
    "src/fedra/wire/_proto/fedra_wire_pb2.py",
    "src/fedra/transport/_proto/fedra_transport_pb2.py",
    "examples/hello-numpy/meta.json",
    "docs/installing.md",
    "tests/test_packaging.py",
]
#: What the installed metadata must say (the probe below prints it from the clean venv).
PROBE = """
import json, fedra
from importlib.metadata import metadata, requires
meta = metadata("fedra")
print(json.dumps({
    "file": fedra.__file__, "version": fedra.__version__, "meta_version": meta["Version"],
    "license": meta["License-Expression"], "license_files": meta.get_all("License-File"),
    "classifiers": meta.get_all("Classifier"), "requires": requires("fedra"),
    "summary": meta["Summary"], "readme_type": meta["Description-Content-Type"],
}))
"""


def run(*cmd: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run ``cmd``; fail with its output when it fails."""
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(
            f"error: {' '.join(map(str, cmd))} exited {done.returncode}\n"
            f"{done.stdout}\n{done.stderr}"
        )
    return done.stdout


def check_sdist(sdist: Path, version: str) -> None:
    with tarfile.open(sdist) as tar:
        prefix = f"fedra-{version}/"
        names = [m.name.removeprefix(prefix) for m in tar.getmembers()]
    junk = sorted(
        n
        for n in names
        if JUNK & set(Path(n).parts) or Path(n).parts[0] in TOP_JUNK or n.endswith(".pyc")
    )
    if junk:
        sys.exit(f"error: the sdist holds what it must not: {junk[:10]}")
    missing = [n for n in SDIST_NEEDS if n not in names]
    if missing:
        sys.exit(f"error: the sdist lacks {missing}")
    print(f"sdist: {len(names)} files, {sdist.stat().st_size // 1024} KiB")


def check_wheel(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
    outside = [n for n in names if not n.startswith(("fedra/", "fedra-"))]
    if outside or not {"fedra/py.typed", "fedra/wire/_proto/fedra_wire_pb2.py"} <= set(names):
        sys.exit(f"error: the wheel's files are wrong: {outside[:10]}")
    if any("__pycache__" in n or n.endswith(".pyc") for n in names):
        sys.exit("error: the wheel holds compiled files")
    print(f"wheel: {len(names)} files, {wheel.stat().st_size // 1024} KiB")


def clean_env() -> dict[str, str]:
    """The environment of the installed venvs: no PYTHONPATH into the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_CACHE_DIR"] = str(ROOT / "build" / "pip-cache")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def download_dependencies(wheelhouse: Path) -> None:
    """The wheels of the build backend and of the dependencies, fetched once for every venv."""
    started = time.monotonic()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = [*pyproject["build-system"]["requires"], *pyproject["project"]["dependencies"]]
    run(
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--only-binary=:all:",
        "-d",
        wheelhouse,
        *wanted,
        env=clean_env(),
    )
    print(f"dependencies downloaded ({time.monotonic() - started:.0f} s)")


def offline_env(wheelhouse: Path) -> dict[str, str]:
    """:func:`clean_env` with pip reading the wheelhouse only (isolated builds included)."""
    return {**clean_env(), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse)}


def check_installed(artifact: Path, version: str, wheelhouse: Path, scratch: Path) -> None:
    """A clean venv with ``artifact`` installed works from outside the checkout."""
    started = time.monotonic()
    venv = WORK / f"venv-{artifact.suffix.strip('.')}"
    run(sys.executable, "-m", "venv", venv)
    env = offline_env(wheelhouse)
    run(venv / "bin/python", "-m", "pip", "install", "-q", artifact, env=env)
    run(venv / "bin/python", "-m", "pip", "check", env=env)
    here = scratch / artifact.suffix.strip(".")
    here.mkdir()
    fedra = venv / "bin/fedra"
    if "simulate" not in run(fedra, "--help", cwd=here, env=env):
        sys.exit("error: fedra --help does not list simulate")
    if run(fedra, "--version", cwd=here, env=env).strip() != version:
        sys.exit(f"error: fedra --version is not {version}")
    info = json.loads(run(venv / "bin/python", "-c", PROBE, cwd=here, env=env))
    requires = [r.replace('"', "'") for r in info["requires"]]
    checks = {
        "fedra imported from the venv": Path(info["file"]).is_relative_to(venv),
        f"version {version} everywhere": info["version"] == info["meta_version"] == version,
        "license Apache-2.0 with LICENSE": info["license"] == "Apache-2.0"
        and info["license_files"] == ["LICENSE"],
        "classifiers": bool(info["classifiers"]),
        "a markdown readme": info["readme_type"] == "text/markdown",
        "the viewer in the tensorboard extra": any(
            r.startswith("tensorboard>=") and r.endswith("extra == 'tensorboard'") for r in requires
        ),
    }
    problems = [f"not {name}" for name, ok in checks.items() if not ok]
    if problems:
        sys.exit(f"error: {artifact.name}: " + "; ".join(problems))
    job = shutil.copytree(ROOT / "examples" / "hello-numpy", here / "hello-numpy")
    run(fedra, "simulate", job, "-n", "2", "-t", "2", "-w", here / "ws", "-q", cwd=here, env=env)
    status = json.loads((here / "ws" / "summary.json").read_text())["status"]
    if status != "FINISHED:COMPLETED":
        sys.exit(f"error: hello-numpy from the {artifact.name} venv ended {status}")
    print(
        f"{artifact.name}: installed, --help, --version, metadata and hello-numpy ok "
        f"({time.monotonic() - started:.0f} s)"
    )


def main() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    dist = WORK / "dist"
    wheelhouse = WORK / "wheelhouse"
    download_dependencies(wheelhouse)
    started = time.monotonic()
    run(sys.executable, "-m", "build", "--outdir", dist, ROOT, env=offline_env(wheelhouse))
    print(f"built the sdist and the wheel ({time.monotonic() - started:.0f} s)")
    (sdist,) = dist.glob("fedra-*.tar.gz")
    (wheel,) = dist.glob("fedra-*.whl")
    version = wheel.name.split("-")[1]
    check_sdist(sdist, version)
    check_wheel(wheel)
    with tempfile.TemporaryDirectory(prefix="fedra-dist-") as scratch:
        for artifact in (wheel, sdist):
            check_installed(artifact, version, wheelhouse, Path(scratch))
    print("dist: ok")


if __name__ == "__main__":
    main()
