"""``docker.sh``, ``Dockerfile`` and ``requirements.txt`` of a kit, for a configured image.

Every participant should run the same Fedra and the same job dependencies. With
``docker_image`` set in ``project.yml``, each server and site kit gets a ``docker.sh`` that
runs that image with the kit mounted, plus the ``Dockerfile`` and ``requirements.txt`` to
build the image on each machine. Inside the container the participant runs in the foreground
(``startup/sub_start.sh``, what ``start.sh`` starts in the background outside docker), so
the container lives exactly as long as the participant and ``docker stop`` ends it cleanly.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from fedra import __version__
from fedra.poc.scripts import write_script

DOCKER_SH = """#!/usr/bin/env bash
# Run {name} in the docker image {image} (built from startup/Dockerfile on this machine:
#   docker build -t {image} {kit_arg}/startup).
# The kit is mounted at /workspace/{name}; inside, startup/sub_start.sh runs the participant in
# the foreground (what startup/start.sh does outside docker), restarting it on request.
# Extra arguments go to `docker run` (e.g. ./docker.sh -d to detach).
# Environment: FEDRA_DOCKER_IMAGE (another image), FEDRA_DOCKER_GPUS (e.g. all: --gpus).
set -euo pipefail
DIR="$(cd "$(dirname "$0")" && pwd)"
KIT="$(dirname "$DIR")"
IMAGE="${{FEDRA_DOCKER_IMAGE:-{image}}}"
GPUS=()
if [ -n "${{FEDRA_DOCKER_GPUS:-}}" ]; then
  GPUS=(--gpus "$FEDRA_DOCKER_GPUS")
fi
exec docker run --rm --init --name {container} --network host --ipc host \\
  -v "$KIT:/workspace/{name}" -w "/workspace/{name}" -e FEDRA_PYTHON=python3 \\
  ${{GPUS[@]+"${{GPUS[@]}}"}} "$@" "$IMAGE" startup/sub_start.sh
"""

DOCKERFILE = """# The image every participant of {project} runs: build it on each machine with
#   docker build -t {image} .
# in this folder (it needs requirements.txt next to it).
ARG BASE_IMAGE=python:3.11-slim
FROM ${{BASE_IMAGE}}
RUN python3 -m pip install --no-cache-dir -U pip
COPY requirements.txt /tmp/fedra-requirements.txt
RUN python3 -m pip install --no-cache-dir -r /tmp/fedra-requirements.txt
WORKDIR /workspace
"""

REQUIREMENTS = """# What every participant of {project} installs (in the image or its virtualenv).
# Add the packages your jobs import (torch, scikit-learn, ...) with exact versions.
fedra=={version}
"""


def write_docker_files(startup: Path, name: str, project: str, image: str) -> None:
    """Write ``docker.sh``, ``Dockerfile`` and ``requirements.txt`` into ``startup``."""
    container = "fedra-" + "".join(c if c.isalnum() or c in "_.-" else "-" for c in name)
    write_script(
        startup / "docker.sh",
        DOCKER_SH.format(
            name=name,
            image=image,
            kit_arg=shlex.quote(name),
            container=shlex.quote(container),
        ),
    )
    (startup / "Dockerfile").write_text(
        DOCKERFILE.format(project=project, image=image), encoding="utf-8"
    )
    (startup / "requirements.txt").write_text(
        REQUIREMENTS.format(project=project, version=__version__), encoding="utf-8"
    )
