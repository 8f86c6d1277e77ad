"""FLARE project files written for these tests, in the shapes FLARE publishes (own values).

- :data:`ARTICLE`: the participants the FLARE 2.1 article edits (an overseer, ``server1``
  with ``enable_byoc``, sites ``site-1``/``site-2``), with 2.1's default builders;
- :data:`FLARE_21`: FLARE 2.1's sample shape (``api_version: 3``, ``roles: [super]``,
  StaticFileBuilder with ``overseer_agent``, ``snapshot_persistor`` and ``components``
  lists, AuthPolicyBuilder, DistributionBuilder);
- :data:`FLARE_2X`: a later 2.x shape (``role:``, anchors and merge keys for per-participant
  ``components``, DockerBuilder, a dummy overseer agent with ``sp_end_point``, no admin port).
"""

from __future__ import annotations

ARTICLE = """\
api_version: 3
name: article_project
description: the article's local deployment
participants:
  # the overseer and servers are named by host names everyone resolves
  - name: overseer
    type: overseer
    org: riverside
    protocol: https
    api_root: /api/v1
    port: 8443
  - name: server1
    type: server
    org: riverside
    fed_learn_port: 8002
    admin_port: 8003
    enable_byoc: true
  - name: server2
    type: server
    org: riverside
    fed_learn_port: 8102
    admin_port: 8103
    enable_byoc: true
  - name: site-1
    type: client
    org: riverside
    enable_byoc: true
  - name: site-2
    type: client
    org: hillside
    enable_byoc: true
  - name: owner@riverside.test
    type: admin
    org: riverside
    roles:
      - super
builders:
  - path: nvflare.lighter.impl.workspace.WorkspaceBuilder
    args:
      template_file: master_template.yml
  - path: nvflare.lighter.impl.template.TemplateBuilder
  - path: nvflare.lighter.impl.static_file.StaticFileBuilder
    args:
      config_folder: config
      docker_image: riverside-fl:1.0
      overseer_agent:
        path: nvflare.ha.overseer_agent.HttpOverseerAgent
        overseer_exists: true
      snapshot_persistor:
        path: nvflare.app_common.state_persistors.storage_state_persistor.StorageStatePersistor
        args:
          uri_root: /
          storage:
            path: nvflare.app_common.storages.filesystem_storage.FilesystemStorage
            args:
              root_dir: /srv/riverside/snapshots
              uri_root: /
  - path: nvflare.lighter.impl.cert.CertBuilder
  - path: nvflare.lighter.impl.signature.SignatureBuilder
"""

FLARE_21 = """\
api_version: 3
name: lakeside
description: two hospitals and a coordinator

participants:
  - name: watch.lakeside.test
    type: overseer
    org: coordinator
    protocol: https
    api_root: /api/v1
    port: 9443
  - name: fl1.lakeside.test
    type: server
    org: coordinator
    fed_learn_port: 9102
    admin_port: 9103
    enable_byoc: true
  - name: fl2.lakeside.test
    type: server
    org: coordinator
    fed_learn_port: 9202
    admin_port: 9203
    enable_byoc: true
  - name: north-clinic
    type: client
    org: north
    enable_byoc: true
  - name: south-clinic
    type: client
    org: south
    enable_byoc: false
  - name: chief@lakeside.test
    type: admin
    org: coordinator
    roles:
      - super

builders:
  - path: nvflare.lighter.impl.workspace.WorkspaceBuilder
    args:
      template_file: master_template.yml
  - path: nvflare.lighter.impl.template.TemplateBuilder
  - path: nvflare.lighter.impl.static_file.StaticFileBuilder
    args:
      config_folder: config
      overseer_agent:
        path: nvflare.ha.overseer_agent.HttpOverseerAgent
        overseer_exists: true
      snapshot_persistor:
        path: nvflare.app_common.state_persistors.storage_state_persistor.StorageStatePersistor
        args:
          uri_root: /
          storage:
            path: nvflare.app_common.storages.filesystem_storage.FilesystemStorage
            args:
              root_dir: /srv/lakeside/snapshots
              uri_root: /
      components:
        server:
          - id: job_scheduler
            path: nvflare.app_common.job_schedulers.job_scheduler.DefaultJobScheduler
            args:
              max_jobs: 2
          - id: job_manager
            path: nvflare.apis.impl.job_def_manager.SimpleJobDefManager
            args:
              uri_root: /srv/lakeside/jobs
              job_store_id: job_store
          - id: job_store
            path: nvflare.app_common.storages.filesystem_storage.FilesystemStorage
        client:
          - id: resource_manager
            path: nvflare.app_common.resource_managers.list_resource_manager.ListResourceManager
            args:
              resources:
                gpu: [0, 1]
  - path: nvflare.lighter.impl.auth_policy.AuthPolicyBuilder
    args:
      orgs:
        coordinator:
          - relaxed
      roles:
        super: super user of system
      groups:
        relaxed:
          desc: relaxed policies
          rules:
            allow_byoc: true
      disabled: false
  - path: nvflare.lighter.impl.cert.CertBuilder
  - path: nvflare.lighter.impl.signature.SignatureBuilder
  - path: nvflare.lighter.impl.workspace.DistributionBuilder
    args:
      zip_password: false
"""

FLARE_2X = """\
api_version: 3
name: hilltop
description: a later FLARE 2.x project file

site_parts: &site_parts
  resource_manager:
    path: nvflare.app_common.resource_managers.list_resource_manager.ListResourceManager
    args:
      resources:
        gpu: [0]

participants:
  - name: backup.hilltop.test
    type: server
    org: hilltop
    fed_learn_port: 7002
    admin_port: 7003
  - name: main.hilltop.test
    type: server
    org: hilltop
    fed_learn_port: 7102
  - name: orchard
    type: client
    org: growers
    listening_host: orchard-lh
    components:
      <<: *site_parts
  - name: vineyard
    type: client
    org: growers
    components:
      <<: *site_parts
  - name: boss@hilltop.test
    type: admin
    org: hilltop
    role: project_admin
  - name: lead@growers.test
    type: admin
    org: growers
    role: lead

builders:
  - path: nvflare.lighter.impl.workspace.WorkspaceBuilder
    args:
      template_file:
        - master_template.yml
        - aws_template.yml
  - path: nvflare.lighter.impl.docker.DockerBuilder
    args:
      docker_image: hilltop/fl:2.0
      base_image: python:3.11
  - path: nvflare.lighter.impl.static_file.StaticFileBuilder
    args:
      config_folder: config
      scheme: grpc
      overseer_agent:
        path: nvflare.ha.dummy_overseer_agent.DummyOverseerAgent
        overseer_exists: false
        args:
          sp_end_point: main.hilltop.test:7102:7103
  - path: nvflare.lighter.impl.cert.CertBuilder
  - path: nvflare.lighter.impl.signature.SignatureBuilder
"""

#: A FLARE project for a federation started for real: one server on localhost (free ports
#: filled in), two sites, a super admin (2.1's roles list) and a lead.
E2E = """\
api_version: 3
name: flare-e2e
description: a FLARE 2.1 project provisioned and started by Fedra
participants:
  - name: localhost
    type: server
    org: central
    fed_learn_port: {fed_port}
    admin_port: {admin_port}
    enable_byoc: true
  - name: site-1
    type: client
    org: hospital-a
    enable_byoc: true
  - name: site-2
    type: client
    org: hospital-b
    enable_byoc: true
  - name: super@central.org
    type: admin
    org: central
    roles: [super]
  - name: lead@hospital-a.org
    type: admin
    org: hospital-a
    role: lead
builders:
  - path: nvflare.lighter.impl.workspace.WorkspaceBuilder
    args:
      template_file: master_template.yml
  - path: nvflare.lighter.impl.template.TemplateBuilder
  - path: nvflare.lighter.impl.static_file.StaticFileBuilder
    args:
      config_folder: config
  - path: nvflare.lighter.impl.auth_policy.AuthPolicyBuilder
    args:
      orgs:
        central: [relaxed]
      roles:
        super: super user of system
      groups:
        relaxed:
          desc: relaxed
          rules:
            allow_byoc: true
  - path: nvflare.lighter.impl.cert.CertBuilder
  - path: nvflare.lighter.impl.signature.SignatureBuilder
"""
