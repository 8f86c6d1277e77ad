"""Secure provisioning: ``project.yml`` to signed startup kits, one per participant.

A project lead describes the federation in ``project.yml`` (:func:`load_project` validates
it into a :class:`Project`; a FLARE 2.x ``project.yml`` is converted, see
:mod:`fedra.provision.flare`), :func:`provision` writes ``workspace/<project>/prod_NN/`` with a
kit folder and zip per participant, all issued by the project's root CA (kept in
``workspace/<project>/state/``), and every kit's ``startup/`` is signed by that CA
(:func:`sign_kit`; :func:`verify_kit` checks it and raises :class:`KitTampered`).
"""

from fedra.pki import LOCAL_DIR, SIGNATURE_FILE, STARTUP_DIR, KitTampered, sign_kit, verify_kit
from fedra.provision.errors import ProjectError
from fedra.provision.flare import FLARE_API_VERSIONS, FlareImport
from fedra.provision.flare_builders import FlareNote
from fedra.provision.kits import CONFIG_FILES, write_kit
from fedra.provision.project import (
    API_VERSION,
    PARTICIPANT_TYPES,
    Admin,
    Client,
    Overseer,
    Participant,
    Project,
    Server,
)
from fedra.provision.sample import PROJECT_FILE, SAMPLE_PROJECT, write_sample
from fedra.provision.schema import parse_project
from fedra.provision.source import ProjectSource, load_project, parse_any, read_project
from fedra.provision.workspace import (
    DEFAULT_WORKSPACE,
    ProvisionResult,
    load_or_create_ca,
    provision,
    zip_kit,
)
from fedra.runtime.kit_local import RIGHTS, SCOPES

__all__ = [
    "API_VERSION",
    "CONFIG_FILES",
    "DEFAULT_WORKSPACE",
    "FLARE_API_VERSIONS",
    "LOCAL_DIR",
    "PARTICIPANT_TYPES",
    "PROJECT_FILE",
    "RIGHTS",
    "SAMPLE_PROJECT",
    "SCOPES",
    "SIGNATURE_FILE",
    "STARTUP_DIR",
    "Admin",
    "Client",
    "FlareImport",
    "FlareNote",
    "KitTampered",
    "Overseer",
    "Participant",
    "Project",
    "ProjectError",
    "ProjectSource",
    "ProvisionResult",
    "Server",
    "load_or_create_ca",
    "load_project",
    "parse_any",
    "parse_project",
    "provision",
    "read_project",
    "sign_kit",
    "verify_kit",
    "write_kit",
    "write_sample",
    "zip_kit",
]
