"""``fedra provision``: a project's startup kits, one folder and one zip per participant.

Layout of a provisioning workspace::

    <workspace>/<project>/state/        rootCA.pem, rootCA.key (0600): the project's CA;
                                        revoked.json: every name ever revoked (see below)
    <workspace>/<project>/prod_00/      the first provisioning: <participant>/ and .zip each
    <workspace>/<project>/prod_01/      the next one, from the same CA (older kits stay valid)

The CA is created on the first run and reused ever after, so a participant added later can
join a federation whose other kits were provisioned earlier. For the same reason a kit of an
earlier provisioning stays valid for the CA; what shuts a participant out is the lists in the
new kits: the admins the project lists now, and the revoked names. ``state/revoked.json``
keeps every name ever revoked (the project's ``revoked:`` list is added to it), so a later
project.yml that forgets one does not let it back in; to take a name off, edit that file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from fedra.core import ConfigError
from fedra.he import load_or_create_secret
from fedra.pki import ROOT_CA_FILE, CertKey, create_ca, verify_issued_by, write_key
from fedra.provision.kits import write_kit
from fedra.provision.project import Project
from fedra.provision.rules import check_revoked

#: Where ``fedra provision`` writes unless told otherwise, relative to the current folder.
DEFAULT_WORKSPACE = Path("workspace")
STATE_DIR = "state"
CA_KEY_FILE = "rootCA.key"
#: The project's secret CKKS context (``homomorphic_encryption: true``), kept with the CA.
HE_STATE_FILE = "he_context.tenseal"
#: Every participant name ever revoked in the project, kept with the CA.
REVOKED_STATE_FILE = "revoked.json"
#: The name of a provisioning's folder inside the project's workspace folder.
PROD_PREFIX = "prod_"

_PROD = re.compile(rf"{PROD_PREFIX}(\d+)")


@dataclass(frozen=True)
class ProvisionResult:
    """What a provisioning wrote: its folder, and each participant's kit folder and zip."""

    project: Project
    prod: Path
    kits: dict[str, Path]
    zips: dict[str, Path]


def provision(
    project: Project,
    workspace: Path = DEFAULT_WORKSPACE,
    *,
    python: str = "python3",
    project_text: str | None = None,
) -> ProvisionResult:
    """Write ``workspace/<project>/prod_NN/`` (the next free NN) with every participant's kit.

    ``python`` is the interpreter the kits' scripts run unless ``$FEDRA_PYTHON`` says another.
    ``prod_NN/project.yml`` is ``project_text`` when given (a project converted from FLARE's
    file), else a copy of the file the project was read from.
    A provisioning that fails leaves no ``prod_NN`` folder behind.
    """
    root = Path(workspace) / project.name
    root.mkdir(parents=True, exist_ok=True)
    ca = load_or_create_ca(root / STATE_DIR, project.name)
    project = with_revoked_state(project, root / STATE_DIR)
    he = None
    if project.homomorphic_encryption:
        # Kept with the CA: kits provisioned later (a new site) must share the same key.
        he = load_or_create_secret(root / STATE_DIR / HE_STATE_FILE)
    prod = _next_prod(root)
    try:
        kits: dict[str, Path] = {}
        zips: dict[str, Path] = {}
        for participant in project.participants:
            folder = write_kit(
                prod / participant.name, participant, project, ca, python=python, he=he
            )
            kits[participant.name] = folder
            zips[participant.name] = zip_kit(folder)
        if project_text is not None:
            (prod / "project.yml").write_text(project_text, encoding="utf-8")
        elif project.source is not None and project.source.is_file():
            shutil.copyfile(project.source, prod / "project.yml")
        _save_revoked(root / STATE_DIR, project.revoked)
    except BaseException:
        shutil.rmtree(prod, ignore_errors=True)
        raise
    return ProvisionResult(project=project, prod=prod, kits=kits, zips=zips)


def with_revoked_state(project: Project, state: Path) -> Project:
    """``project`` with every name revoked earlier (``state/revoked.json``) revoked too.

    Raises :class:`fedra.provision.ProjectError` when a participant has a revoked name.
    """
    path = state / REVOKED_STATE_FILE
    earlier: list[str] = []
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"{path}: cannot read the revoked names: {err}") from err
        names = data.get("revoked") if isinstance(data, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f'{path}: expected {{"revoked": ["name", ...]}}')
        earlier = names
    revoked = tuple(dict.fromkeys([*earlier, *project.revoked]))
    if revoked == project.revoked:
        return project
    project = dataclasses.replace(project, revoked=revoked)
    check_revoked(project, str(project.source or "project.yml"))
    return project


def _save_revoked(state: Path, revoked: tuple[str, ...]) -> None:
    if not revoked and not (state / REVOKED_STATE_FILE).exists():
        return
    text = json.dumps({"revoked": sorted(revoked)}, indent=2) + "\n"
    (state / REVOKED_STATE_FILE).write_text(text, encoding="utf-8")


def load_or_create_ca(state: Path, project: str) -> CertKey:
    """The project's CA from ``state/`` (created there, key 0600, when it is not yet)."""
    cert_file, key_file = state / ROOT_CA_FILE, state / CA_KEY_FILE
    if cert_file.exists() or key_file.exists():
        try:
            ca = CertKey(cert_pem=cert_file.read_bytes(), key_pem=key_file.read_bytes())
        except OSError as err:
            raise ConfigError(
                f"{state}: cannot read the project CA ({err.strerror or err}); both "
                f"{ROOT_CA_FILE} and {CA_KEY_FILE} must be there"
            ) from err
        verify_issued_by(ca.cert_pem, ca.cert_pem)
        return ca
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(state, 0o700)
    ca = create_ca(project)
    write_key(key_file, ca.key_pem)
    cert_file.write_bytes(ca.cert_pem)
    return ca


def zip_kit(folder: Path) -> Path:
    """``folder.zip`` next to ``folder``, holding ``<name>/…`` with the files' permissions."""
    target = folder.with_name(folder.name + ".zip")
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(folder, folder.name)
        for path in sorted(folder.rglob("*")):
            archive.write(path, str(Path(folder.name) / path.relative_to(folder)))
    return target


def _next_prod(root: Path) -> Path:
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := _PROD.fullmatch(p.name))]
    number = max(numbers, default=-1) + 1
    while True:
        prod = root / f"{PROD_PREFIX}{number:02d}"
        try:
            prod.mkdir()
        except FileExistsError:
            number += 1
            continue
        return prod
