"""Which jobs a site and the server run: the submitter's signature, the policy's rights by
role and org, and custom code by content. A throwaway CA and admin certificates are made here;
nothing is started."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from fedra.core import ConfigError
from fedra.pki import CertKey, Identity, create_ca, issue, sign_job
from fedra.runtime.authz import DEFAULT_POLICY, JobRefused, check_job, load_policy
from fedra.runtime.byoc import check_server_job
from fedra.runtime.config import ServerKit

ARCHIVE = b"PK\x05\x06" + b"\x00" * 18  # the bytes that are signed (an empty zip)


@pytest.fixture(scope="module")
def ca() -> CertKey:
    return create_ca("authz-tests")


def admin(ca: CertKey, name: str, org: str, role: str) -> CertKey:
    return issue(ca, Identity(name, org, role))


def signed(cert: CertKey, archive: bytes = ARCHIVE) -> dict[str, object]:
    return {"signature": sign_job(archive, cert.key_pem), "certificate": cert.cert_pem.decode()}


def plain_job(folder: Path, *, custom: str | None = None) -> Path:
    """A job of built-ins only, for the server and site-a; ``custom``: a file in custom/."""
    (folder / "app" / "config").mkdir(parents=True)
    meta = {"name": "plain", "deploy_map": {"app": ["server"]}, "min_clients": 1}
    (folder / "meta.json").write_text(json.dumps(meta))
    server = {"format_version": 1, "workflows": [{"class": "FedAvg", "args": {"num_rounds": 1}}]}
    (folder / "app" / "config" / "config_fed_server.json").write_text(json.dumps(server))
    if custom is not None:
        (folder / "app" / "custom").mkdir()
        (folder / "app" / "custom" / custom).write_text("print('my own code')\n")
    return folder


def site_job(folder: Path, *, custom: bool) -> Path:
    """A job whose site app runs a script (code of its own) or, without ``custom``, is the
    server app only: site-a runs no app of it, so it brings no code to the site."""
    if not custom:
        return plain_job(folder)
    from fedra.job import FedJob

    script = folder.parent / "train.txt"
    script.write_text("print('hi')\n")
    job = FedJob(folder.name, min_clients=1)
    job.add_workflow("FedAvg", num_rounds=1, min_clients=1)
    job.add_executor("ScriptExecutor", script="train.txt")
    job.add_file(script)
    job.export(folder)
    return folder


def policy(kit: Path, roles: object, name: str = "authorization.json") -> None:
    (kit / "local").mkdir(parents=True, exist_ok=True)
    (kit / "local" / name).write_text(json.dumps({"roles": roles}))


def check(kit: Path, ca: CertKey, headers: dict[str, object], job: Path) -> Identity:
    signed = (headers.get("signature"), headers.get("certificate"))
    pair = tuple(v if isinstance(v, str) else None for v in signed)
    return check_job(kit, "org-a", ca.cert_pem, ARCHIVE, (pair[0], pair[1]), job, site="site-a")


# -- the policy file -------------------------------------------------------------------------
def test_without_a_file_the_built_in_policy_is_used(tmp_path: Path) -> None:
    assert load_policy(tmp_path) == (DEFAULT_POLICY, "the built-in default policy")


def test_the_sites_own_file_comes_before_the_provisioned_default(tmp_path: Path) -> None:
    policy(tmp_path, {"lead": {"submit_job": "own_org"}}, "authorization.json.default")
    assert load_policy(tmp_path) == (
        {"lead": {"submit_job": "own_org"}},
        "local/authorization.json.default",
    )
    policy(tmp_path, {"member": {"submit_job": "any"}})
    assert load_policy(tmp_path) == (
        {"member": {"submit_job": "any"}},
        "local/authorization.json",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"roles": {', r"authorization\.json: line 1: invalid JSON"),
        ("[1, 2]", r"authorization\.json: roles: expected an object of role -> rights"),
        ('{"roles": ["lead"]}', r"authorization\.json: roles: expected an object"),
        ('{"rules": {}}', r"authorization\.json: roles: expected an object"),
    ],
)
def test_a_bad_policy_file_is_an_error_naming_it(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "authorization.json").write_text(text)
    with pytest.raises(ConfigError, match=message) as bad:
        load_policy(tmp_path)
    assert str(tmp_path / "local" / "authorization.json") in str(bad.value)


def test_a_bad_policy_file_is_not_skipped_for_the_default(tmp_path: Path) -> None:
    policy(tmp_path, DEFAULT_POLICY, "authorization.json.default")
    (tmp_path / "local" / "authorization.json").write_text("{oops")
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_policy(tmp_path)


# -- a site's check of a job -----------------------------------------------------------------
def test_a_lead_of_any_org_submits_and_runs_code_under_the_default_policy(
    tmp_path: Path, ca: CertKey
) -> None:
    lead = admin(ca, "lead@b.org", "org-b", "lead")
    job = site_job(tmp_path / "job", custom=True)
    who = check(tmp_path / "kit", ca, signed(lead), job)
    assert (who.name, who.org, who.role) == ("lead@b.org", "org-b", "lead")


@pytest.mark.parametrize(
    "headers",
    [{}, {"signature": "abc"}, {"certificate": "x"}, {"signature": 1, "certificate": "x"}],
)
def test_a_job_without_a_signature_and_certificate_is_refused(
    tmp_path: Path, ca: CertKey, headers: dict[str, object]
) -> None:
    with pytest.raises(JobRefused, match=r"^the job carries no submitter signature$"):
        check(tmp_path, ca, headers, plain_job(tmp_path / "job"))


def test_a_signature_over_other_bytes_is_refused(tmp_path: Path, ca: CertKey) -> None:
    lead = admin(ca, "lead@a.org", "org-a", "lead")
    headers = signed(lead, ARCHIVE + b"changed")
    with pytest.raises(JobRefused, match=r"does not match the signature of lead@a\.org"):
        check(tmp_path, ca, headers, plain_job(tmp_path / "job"))


def test_a_certificate_of_another_ca_is_refused(tmp_path: Path, ca: CertKey) -> None:
    stranger = admin(create_ca("another-project"), "lead@a.org", "org-a", "lead")
    with pytest.raises(JobRefused, match=r"^the job's signature is not valid: "):
        check(tmp_path, ca, signed(stranger), plain_job(tmp_path / "job"))


def test_a_job_signed_by_a_site_is_refused(tmp_path: Path, ca: CertKey) -> None:
    site = issue(ca, Identity("site-b", "org-b", "client"))
    with pytest.raises(JobRefused, match="jobs are signed by admins, not by a 'client'"):
        check(tmp_path, ca, signed(site), plain_job(tmp_path / "job"))


def test_a_signature_that_is_not_base64_is_refused(tmp_path: Path, ca: CertKey) -> None:
    lead = admin(ca, "lead@a.org", "org-a", "lead")
    headers = {"signature": "not base64 !", "certificate": lead.cert_pem.decode()}
    with pytest.raises(JobRefused, match="not base64"):
        check(tmp_path, ca, headers, plain_job(tmp_path / "job"))


def test_a_member_may_not_submit_under_the_default_policy(tmp_path: Path, ca: CertKey) -> None:
    member = admin(ca, "member@a.org", "org-a", "member")
    with pytest.raises(JobRefused) as refused:
        check(tmp_path, ca, signed(member), plain_job(tmp_path / "job"))
    assert str(refused.value) == (
        "member@a.org (member, org-a) may not submit jobs to this site "
        "(the built-in default policy)"
    )


def test_own_org_lets_only_the_sites_org_submit(tmp_path: Path, ca: CertKey) -> None:
    policy(tmp_path, {"lead": {"submit_job": "own_org", "byoc": "none"}})
    job = plain_job(tmp_path / "job")
    ours = admin(ca, "lead@a.org", "org-a", "lead")
    assert check(tmp_path, ca, signed(ours), job).name == "lead@a.org"
    theirs = admin(ca, "lead@b.org", "org-b", "lead")
    with pytest.raises(JobRefused, match=r"lead@b.org \(lead, org-b\) may not submit jobs to "):
        check(tmp_path, ca, signed(theirs), job)


@pytest.mark.parametrize("scope", ["none", "all", "", None, 1])
def test_any_other_scope_grants_nothing(tmp_path: Path, ca: CertKey, scope: object) -> None:
    policy(tmp_path, {"lead": {"submit_job": scope, "byoc": "any"}})
    lead = admin(ca, "lead@a.org", "org-a", "lead")
    with pytest.raises(JobRefused, match=r"may not submit jobs to this site \(local/author"):
        check(tmp_path, ca, signed(lead), plain_job(tmp_path / "job"))


def test_a_role_the_policy_does_not_name_gets_nothing(tmp_path: Path, ca: CertKey) -> None:
    policy(tmp_path, {"lead": {"submit_job": "any", "byoc": "any"}})
    boss = admin(ca, "boss@c.org", "central", "project_admin")
    with pytest.raises(JobRefused, match="may not submit jobs"):
        check(tmp_path, ca, signed(boss), plain_job(tmp_path / "job"))


def test_code_is_refused_by_content_without_the_byoc_right(tmp_path: Path, ca: CertKey) -> None:
    policy(tmp_path, {"lead": {"submit_job": "any"}})  # no byoc: none
    lead = admin(ca, "lead@b.org", "org-b", "lead")
    with pytest.raises(JobRefused) as refused:
        check(tmp_path, ca, signed(lead), site_job(tmp_path / "job", custom=True))
    message = str(refused.value)
    assert message.startswith("job submitted by lead@b.org (lead, org-b) brings its own code (")
    assert "custom/train.txt: a file in custom/" in message
    assert message.endswith(
        "lead may not run custom code on this site (local/authorization.json: byoc)"
    )


def test_a_job_with_no_code_for_the_site_passes_without_the_byoc_right(
    tmp_path: Path, ca: CertKey
) -> None:
    policy(tmp_path, {"lead": {"submit_job": "any", "byoc": "none"}})
    lead = admin(ca, "lead@b.org", "org-b", "lead")
    job = plain_job(tmp_path / "job", custom="server_only.py")  # only the server's app has it
    assert check(tmp_path, ca, signed(lead), job).role == "lead"


def test_byoc_own_org_lets_only_the_sites_org_run_code(tmp_path: Path, ca: CertKey) -> None:
    policy(tmp_path, {"lead": {"submit_job": "any", "byoc": "own_org"}})
    job = site_job(tmp_path / "job", custom=True)
    assert check(tmp_path, ca, signed(admin(ca, "l@a.org", "org-a", "lead")), job)
    with pytest.raises(JobRefused, match="brings its own code"):
        check(tmp_path, ca, signed(admin(ca, "l@b.org", "org-b", "lead")), job)


# -- the server's check of the code it would run ------------------------------------------------
@dataclass
class FakeStore:
    """A job store holding one job: its archive and its stored submission."""

    archive: bytes = ARCHIVE
    submission: dict[str, object] | None = None
    asked: list[str] = field(default_factory=list)

    def get(self, job_id: str) -> SimpleNamespace:
        self.asked.append(job_id)
        info = {} if self.submission is None else {"submission": self.submission}
        return SimpleNamespace(run_info=info)

    def job_zip(self, job_id: str) -> bytes:
        return self.archive


def server_kit(root: Path, roles: object = None) -> ServerKit:
    (root / "startup").mkdir(parents=True)
    (root / "startup" / "fed_server.json").write_text('{"name": "server1", "org": "org-a"}')
    if roles is not None:
        policy(root, roles)
    return ServerKit.load(root)


def server_check(kit: ServerKit, ca: CertKey, store: FakeStore, job: Path) -> None:
    check_server_job(kit, ca.cert_pem, store, "job-1", job)  # type: ignore[arg-type]


def test_the_server_runs_a_job_of_built_ins_whoever_sent_it(tmp_path: Path, ca: CertKey) -> None:
    kit = server_kit(tmp_path / "server1")
    store = FakeStore()  # not even a signature: nothing of the job's own would run
    server_check(kit, ca, store, plain_job(tmp_path / "job"))
    assert store.asked == ["job-1"]


def test_the_server_refuses_code_it_cannot_attribute(tmp_path: Path, ca: CertKey) -> None:
    kit = server_kit(tmp_path / "server1")
    job = plain_job(tmp_path / "job", custom="flow.py")
    with pytest.raises(JobRefused) as refused:
        server_check(kit, ca, FakeStore(), job)
    assert str(refused.value) == (
        "server1 refuses job job-1: it brings its own code (app/custom/flow.py: a file in "
        "custom/) and the job carries no submitter signature, so the server's byoc right "
        "cannot be checked"
    )


def test_the_server_refuses_code_under_a_signature_that_does_not_match(
    tmp_path: Path, ca: CertKey
) -> None:
    kit = server_kit(tmp_path / "server1")
    lead = admin(ca, "lead@a.org", "org-a", "lead")
    store = FakeStore(archive=ARCHIVE + b"swapped", submission=signed(lead))
    job = plain_job(tmp_path / "job", custom="flow.py")
    with pytest.raises(JobRefused, match="the job's signature is not valid: the job archive"):
        server_check(kit, ca, store, job)


def test_the_servers_policy_decides_by_the_submitters_role_and_org(
    tmp_path: Path, ca: CertKey
) -> None:
    kit = server_kit(tmp_path / "server1", {"lead": {"byoc": "own_org"}, "member": {}})
    job = plain_job(tmp_path / "job", custom="flow.py")
    server_check(kit, ca, FakeStore(submission=signed(admin(ca, "l@a.org", "org-a", "lead"))), job)
    other = FakeStore(submission=signed(admin(ca, "l@b.org", "org-b", "lead")))
    with pytest.raises(JobRefused) as refused:
        server_check(kit, ca, other, job)
    assert str(refused.value) == (
        "server1 refuses job job-1: job submitted by l@b.org (lead, org-b) brings its own code "
        "(app/custom/flow.py: a file in custom/) and lead may not run custom code on server1 "
        "(local/authorization.json: byoc)"
    )


def test_the_server_counts_a_job_that_does_not_validate_as_code(
    tmp_path: Path, ca: CertKey
) -> None:
    kit = server_kit(tmp_path / "server1", {"member": {"byoc": "none"}})
    job = plain_job(tmp_path / "job")
    (job / "meta.json").write_text("{not json")
    member = FakeStore(submission=signed(admin(ca, "m@a.org", "org-a", "member")))
    with pytest.raises(JobRefused, match=r"brings its own code \(the job does not validate"):
        server_check(kit, ca, member, job)
