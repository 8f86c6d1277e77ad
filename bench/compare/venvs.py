"""The peers' own virtual environments (never Fedra's ``.venv``).

Each peer is installed with pip into ``<root>/<system>`` (default ``.bench-venvs/``, ignored
by git), pinned, with the project's ``constraints.txt`` (which pins torch to the CPU build
on the machine's disk, should a dependency ever ask for torch: neither does today).
Installation runs only when the pinned version is not there yet.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = REPO / ".bench-venvs"


@dataclass(frozen=True)
class Peer:
    """A system to compare with: its pip requirement and the distribution to check."""

    name: str
    requirement: str
    distribution: str
    version: str


PEERS = {
    "nvflare": Peer("nvflare", "nvflare==2.9.0", "nvflare", "2.9.0"),
    "flower": Peer("flower", "flwr[simulation]==1.42.0", "flwr", "1.42.0"),
}


def python_of(root: Path, system: str) -> Path:
    """The interpreter of a peer's environment."""
    return root / system / "bin" / "python"


def installed_version(python: Path, distribution: str) -> str | None:
    """The version of ``distribution`` in the environment of ``python``, or None."""
    if not python.exists():
        return None
    done = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))",
         distribution],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout.strip() if done.returncode == 0 else None


def ensure(system: str, root: Path = DEFAULT_ROOT, log: Path | None = None) -> Path:
    """Install ``system`` into its own environment if needed; return its interpreter."""
    peer = PEERS[system]
    python = python_of(root, system)
    if installed_version(python, peer.distribution) == peer.version:
        return python
    print(f"  installing {peer.requirement} into {root / system} ...", file=sys.stderr, flush=True)
    root.mkdir(parents=True, exist_ok=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(root / system)], check=True)
    command = [
        str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
        "-c", str(REPO / "constraints.txt"), peer.requirement,
    ]  # fmt: skip
    out = open(log, "ab") if log is not None else None  # noqa: SIM115 - closed below
    try:
        done = subprocess.run(command, stdout=out, stderr=out, check=False)
    finally:
        if out is not None:
            out.close()
    if done.returncode != 0:
        raise RuntimeError(f"installing {peer.requirement} failed (see {log or 'above'})")
    if installed_version(python, peer.distribution) != peer.version:
        raise RuntimeError(f"{peer.requirement}: not importable after installation")
    return python
