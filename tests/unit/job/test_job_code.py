"""Whether a job brings code of its own (BYOC), decided from its content, not file names."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from fedra.job import FedJob, load_job
from fedra.job.code import CODE_ARGUMENTS, describe, folder_code, job_code
from fedra.job.registry import BUILTINS


def _builtins_only(folder: Path) -> Path:
    """A job for the server only (sites need an executor, and every executor runs a script)."""
    (folder / "app" / "config").mkdir(parents=True)
    meta = {"name": "plain", "deploy_map": {"app": ["server"]}, "min_clients": 1}
    (folder / "meta.json").write_text(json.dumps(meta))
    server = {"format_version": 1, "workflows": [{"class": "FedAvg", "args": {"num_rounds": 1}}]}
    (folder / "app" / "config" / "config_fed_server.json").write_text(json.dumps(server))
    return folder


def test_a_job_of_built_ins_only_brings_no_code(tmp_path: Path) -> None:
    assert job_code(load_job(_builtins_only(tmp_path / "job"))) == []


@pytest.mark.parametrize("name", ["train.txt", "model.npz", "run", "pkg/notes.md", "x.py"])
def test_any_file_in_custom_counts_whatever_its_extension(tmp_path: Path, name: str) -> None:
    folder = _builtins_only(tmp_path / "job")
    target = folder / "app" / "custom" / name
    target.parent.mkdir(parents=True)
    target.write_text("print('hello')\n")
    found = job_code(load_job(folder))
    assert found == [f"app/custom/{name}: a file in custom/"]


def test_a_link_in_custom_counts(tmp_path: Path) -> None:
    folder = _builtins_only(tmp_path / "job")
    (folder / "app" / "custom").mkdir()
    (folder / "app" / "custom" / "elsewhere").symlink_to(tmp_path)
    assert job_code(load_job(folder)) == ["app/custom/elsewhere: a file in custom/"]


def test_a_script_executor_counts_by_its_script_argument(tmp_path: Path) -> None:
    src = tmp_path / "train.txt"
    src.write_text("print('hi')\n")
    job = FedJob("script", min_clients=1)
    job.add_workflow("FedAvg", num_rounds=1, min_clients=1)
    job.add_executor("ScriptExecutor", script="train.txt", launch="subprocess")
    job.add_file(src)
    found = job_code(job.export(tmp_path / "job"))
    assert "app/custom/train.txt: a file in custom/" in found
    assert any("executors[0].args.script 'train.txt': names code to run" in f for f in found)


def test_a_custom_class_counts(tmp_path: Path) -> None:
    src = tmp_path / "flow.py"
    src.write_text("class Flow:\n    pass\n")
    job = FedJob("custom", min_clients=1)
    job.add_workflow(custom="flow.Flow")
    job.add_executor(custom="flow.Flow")
    job.add_file(src)
    found = job_code(job.export(tmp_path / "job"))
    assert any("workflows[0].custom 'flow.Flow': a class of the job's own" in f for f in found)


def test_a_persistor_module_counts(tmp_path: Path) -> None:
    src = tmp_path / "net.py"
    src.write_text("class Net:\n    pass\n")
    job = FedJob("torch", min_clients=1)
    job.add_workflow("FedAvg", num_rounds=1, min_clients=1)
    job.set_persistor(torch_module="net.Net")
    job.add_executor(custom="net.Net")
    job.add_file(src)
    found = job_code(job.export(tmp_path / "job"))
    assert any("persistor.args.torch_module 'net.Net': names code to run" in f for f in found)


def test_an_invalid_job_counts_as_code(tmp_path: Path) -> None:
    folder = _builtins_only(tmp_path / "job")
    (folder / "app" / "config" / "config_fed_server.json").write_text(
        json.dumps({"format_version": 1, "workflows": [{"class": "NoSuchFlow"}]})
    )
    (found,) = folder_code(folder, None)
    assert found.startswith("the job does not validate")


def test_each_participant_looks_at_the_app_it_runs(tmp_path: Path) -> None:
    folder = _builtins_only(tmp_path / "job")
    meta = {"name": "two", "deploy_map": {"app": ["server"], "train": ["@ALL"]}}
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "train" / "config").mkdir(parents=True)
    (folder / "train" / "custom").mkdir()
    (folder / "train" / "custom" / "train.txt").write_text("print('hi')\n")
    executor = {"tasks": ["*"], "class": "ScriptExecutor", "args": {"script": "train.txt"}}
    client = {"format_version": 1, "executors": [executor]}
    (folder / "train" / "config" / "config_fed_client.json").write_text(json.dumps(client))
    assert folder_code(folder, None) == []  # the server runs only the built-in server app
    assert folder_code(folder, "site-1") == [
        "train/custom/train.txt: a file in custom/",
        "train/config/config_fed_client.json: executors[0].args.script 'train.txt': "
        "names code to run",
    ]


def test_every_built_in_argument_that_names_code_is_declared() -> None:
    # A built-in whose constructor takes a script, a command or a module must be covered.
    words = ("script", "command", "cmd", "module", "exec", "program", "launcher", "entry")
    for kind, classes in BUILTINS.items():
        for name, cls in classes.items():
            for param in inspect.signature(cls).parameters:
                if any(w in param for w in words):
                    assert param in CODE_ARGUMENTS, f"{kind} {name}: argument {param}"


def test_describe_shortens_long_findings() -> None:
    assert describe(["a", "b"]) == "a; b"
    assert describe(["a", "b", "c", "d", "e"]) == "a; b; c (and 2 more)"
