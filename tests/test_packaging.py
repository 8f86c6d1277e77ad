"""What the package declares: one version, true dependency ranges, generated code they fit.

The checks that install the package live in scripts/check-dist.py (the wheel and sdist in clean
venvs) and scripts/check-lowest-deps.sh (the lowest declared versions); .ci/run runs both.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import fedra
from fedra.cli import main

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PROTO_DIRS = [ROOT / "src/fedra/wire/_proto", ROOT / "src/fedra/transport/_proto"]


def test_version_option_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        main(["--version"])
    assert ended.value.code == 0
    assert capsys.readouterr().out.strip() == fedra.__version__


def test_the_version_has_one_source() -> None:
    assert "version" not in PROJECT
    assert "version" in PROJECT["dynamic"]
    hatch = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]
    assert hatch["version"]["path"] == "src/fedra/__init__.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+|(a|b|rc)\d+)?", fedra.__version__)


def test_the_changelog_has_the_version_and_an_unreleased_section() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert f"## [{fedra.__version__}]" in changelog


def test_every_core_dependency_has_a_lower_bound_to_test() -> None:
    # scripts/check-lowest-deps.sh installs exactly these lower bounds.
    for dep in PROJECT["dependencies"]:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+>=[0-9.]+(,<[0-9.]+)?", dep), dep


@pytest.mark.parametrize("proto_dir", PROTO_DIRS, ids=lambda p: p.parent.name)
def test_generated_code_does_not_pin_the_runtime(proto_dir: Path) -> None:
    # Code from a newer protoc refuses protobuf runtimes older than itself, and a _pb2_grpc
    # module refuses older grpcio: neither may come back (see scripts/gen_proto.sh).
    generated = sorted(proto_dir.glob("*_pb2*.py"))
    assert generated
    for path in generated:
        assert not path.name.endswith("_pb2_grpc.py"), path
        text = path.read_text()
        assert "ValidateProtobufRuntimeVersion" not in text, path
        assert "GRPC_GENERATED_VERSION" not in text, path
        found = re.search(r"# Protobuf Python Version: (\d+)\.", text)
        assert found is not None, path
        protobuf = next(d for d in PROJECT["dependencies"] if d.startswith("protobuf"))
        assert f">={found[1]}." in protobuf, (path, protobuf)


def test_the_tensorboard_extra_installs_the_writer_and_the_viewer() -> None:
    extras = PROJECT["optional-dependencies"]
    names = {re.split(r"[<>=\[ ]", dep)[0] for dep in extras["tensorboard"]}
    assert names == {"tensorboardX", "tensorboard"}
    assert "fedra[tensorboard]" in extras["dev"]


def test_license_is_an_spdx_expression_with_its_file() -> None:
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text()
