"""The sample ``project.yml`` that ``fedra provision`` offers to write when there is none."""

from __future__ import annotations

import os
from pathlib import Path

from fedra.core import ConfigError

#: The file ``fedra provision`` reads by default, in the current folder.
PROJECT_FILE = "project.yml"

SAMPLE_PROJECT = """\
# Fedra project file: who takes part in the federation. `fedra provision -p project.yml`
# turns it into one signed startup kit per participant (see docs/provisioning.md).
api_version: 1
# The project's name: the workspace folder and the root CA are named after it.
name: example_project
description: An example federation with two servers and two sites.
# When set, every server and site kit gets docker.sh (runs this image with the kit mounted),
# a Dockerfile and requirements.txt to build it.
# docker_image: fedra-example:latest
# When true, every site kit gets a secret CKKS context and every server kit the public one,
# for jobs that average homomorphically encrypted models (HEEncrypt, he_weighted; see
# docs/privacy.md). The secret context is kept in state/ and reused by later provisionings.
# homomorphic_encryption: true
# Participants shut out for good (a stolen key, a lost laptop, someone who left): every new
# kit lists them, and the server, the sites and the overseer refuse their certificates. Hand
# the new kits to everyone still in. A revoked name is never a participant again (give a
# replacement a new name); provisioning remembers it in state/revoked.json. An admin merely
# removed from participants is refused too: kits list the project's admins. When only a key
# leaked, revoke that certificate by its fingerprint (openssl x509 -in client.crt -noout
# -fingerprint -sha256) and keep the participant: the next kits give it a new certificate.
# revoked: [old-site, former@example.org, "sha256:3F:A2:...:9C"]

participants:
  # The overseer watches the servers for high availability: it names the hot server and
  # promotes a standby when the hot one fails (docs/ha.md). Its name is the host name
  # everyone connects to: change overseer to its FQDN.
  - name: overseer
    type: overseer
    org: example
    protocol: https
    api_root: /api/v1
    port: 8443
  # Servers: the name is the host name sites and admins connect to (an FQDN, or a name in
  # /etc/hosts). Sites connect to fed_learn_port, admins to admin_port. Servers on the same
  # host need distinct ports; fed_learn_port and admin_port always differ.
  - name: server1
    type: server
    org: example
    fed_learn_port: 8002
    admin_port: 8003
    # enable_byoc lets jobs run their own code (custom/) here. Default: false.
    enable_byoc: true
    # host: 127.0.0.1   # optional: the address to listen on and connect to, when the name
    #                   # does not resolve (tests); the name stays the certificate's name.
    # job_store: where jobs, snapshots and models are kept. Servers fail over only when they
    # share one: the same job_store on every server. Both servers on one host: SQLite in a
    # folder on its local disk (as here). On several hosts: PostgreSQL and a shared folder,
    # {backend: postgres, dsn: "host=db.example.org dbname=fedra user=fedra",
    # path: /mnt/fedra/store} (docs/ha.md). Without job_store a server keeps its own store/.
    job_store: {backend: sqlite, path: /srv/fedra/store}
  - name: server2
    type: server
    org: example
    fed_learn_port: 8102
    admin_port: 8103
    enable_byoc: true
    job_store: {backend: sqlite, path: /srv/fedra/store}
  # Sites (FL clients): each trains on its own data.
  - name: site-1
    type: client
    org: example
    enable_byoc: true
  - name: site-2
    type: client
    org: another-org
    enable_byoc: true
  # Admins are named by e-mail; the role says what they may do:
  # project_admin (everything), org_admin (their org's sites and jobs), lead (submit and
  # manage their own jobs), member (view only).
  - name: admin@example.org
    type: admin
    org: example
    role: project_admin
  - name: lead@example.org
    type: admin
    org: example
    role: lead
"""


def write_sample(path: Path = Path(PROJECT_FILE)) -> Path:
    """Write the sample project file to ``path``; never replace an existing file."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError as err:
        raise ConfigError(f"{path} already exists: not replacing it") from err
    except OSError as err:
        raise ConfigError(f"cannot write {path}: {err.strerror or err}") from err
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(SAMPLE_PROJECT)
    return path
