"""The peers over emulated links (bench.wan_peers): the parts that need no peer and no bed.

The command line, the link's minimum, the peer drivers' command lines and hosts, and how a
driver's result line becomes figures (the final model checked as the harness checks it).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from bench import wan_peers
from bench.compare.harness import PEERS_DIR, WrongResult
from bench.compare.measure import Run
from bench.netbed import PROFILES

MODEL = 100 * 10**6


def peer_module(name: str) -> ModuleType:
    """``bench/compare/peers/<name>.py`` (the peers import them by path, not as a package)."""
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", PEERS_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def deploy_helpers() -> ModuleType:
    """``_deploy.py``: standard library only."""
    return peer_module("_deploy")


def fake_run(final: dict[str, float | int], rounds: list[float], peak: int = 3 * MODEL) -> Run:
    """What ``run_driver`` returns for a peer driver that printed these figures."""
    job = {"round_s": rounds, "final": final, "wall_s": sum(rounds) + 5}
    result = {"system": "nvflare", "startup_s": 12.5, "jobs": {"100MB": job}}
    return Run(True, result, 60.0, {"server": {"100MB": peak, "end": 1}, "tree": {}})


def test_the_link_minimum_is_the_servers_link_both_ways_plus_a_round_trip() -> None:
    # 2 sites x 100 MB down and up through 1 Gbit/s = 3.2 s, + 50 ms (bench.wan_round's).
    assert wan_peers.link_minimum(PROFILES["wan"], 2, MODEL) == pytest.approx(3.25)
    assert wan_peers.link_minimum(PROFILES["lan"], 2, MODEL) == pytest.approx(3.2002)
    assert wan_peers.link_minimum(PROFILES["wan"], 2, MODEL // 2) == pytest.approx(1.65)
    # 200 Mbit/s: 16 s for 2 sites, 64 s for 8, + 150 ms.
    assert wan_peers.link_minimum(PROFILES["far"], 2, MODEL) == pytest.approx(16.15)
    assert wan_peers.link_minimum(PROFILES["far"], 8, MODEL) == pytest.approx(64.15)
    assert wan_peers.model_bytes("100MB") == MODEL


def test_arguments_defaults_lists_and_refusals(capsys: pytest.CaptureFixture[str]) -> None:
    args = wan_peers.parse_args([])
    assert (args.profiles, args.system_list) == (["wan"], ["nvflare", "flower"])
    assert (args.size, args.sites, args.rounds) == ("100MB", 2, 3)
    args = wan_peers.parse_args(["--profile", "lan, far", "--systems", "flower", "--sites", "8"])
    assert (args.profiles, args.system_list, args.sites) == (["lan", "far"], ["flower"], 8)
    for bad in (["--profile", "moon"], ["--systems", "fedra"], ["--sites", "0"], ["--systems", ""]):
        with pytest.raises(SystemExit) as exc:
            wan_peers.parse_args(bad)
        assert exc.value.code != 0
    with pytest.raises(SystemExit):
        wan_peers.parse_args(["--size", "50MB"])  # the peers' drivers know 3x3, 100MB, 1GB
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        wan_peers.parse_args(["--help"])
    assert done.value.code == 0
    assert "link minimum" in capsys.readouterr().out


def test_the_peer_command_names_its_hosts_and_the_server_by_name(tmp_path: Path) -> None:
    netns = {"server": "fb1a-server1", "site-1": "fb1a-site-1", "site-2": "fb1a-site-2"}
    for system in wan_peers.SYSTEMS:
        command = wan_peers.peer_command(
            Path("/venv/bin/python"), system, tmp_path, server_host="server1.fedra.test",
            netns=netns, size="100MB", sites=2, rounds=3, round_limit=120.0,
        )  # fmt: skip
        assert command[0] == "/venv/bin/python"
        assert Path(command[1]).is_file() and Path(command[1]).parent == PEERS_DIR
        text = " ".join(command)
        assert "--server-host server1.fedra.test" in text
        assert "--sites 2 --models 100MB" in text and "--big-rounds 3" in text
        assert "--round-limit 120" in text and "--init pattern" in text
        pairs = [command[i + 1] for i, arg in enumerate(command) if arg == "--netns"]
        assert pairs == ["server=fb1a-server1", "site-1=fb1a-site-1", "site-2=fb1a-site-2"]
        assert deploy_helpers().parse_netns(pairs) == netns
    assert wan_peers.bed_hosts(3) == ["server1", "site-1", "site-2", "site-3", "admin"]


def test_deploy_helpers_run_in_a_namespace_only_when_given_one() -> None:
    helpers = deploy_helpers()
    assert helpers.in_netns("fb1a-site-1", ["bash", "x.sh"]) == [
        "ip", "netns", "exec", "fb1a-site-1", "bash", "x.sh",
    ]  # fmt: skip
    assert helpers.in_netns(None, ["bash", "x.sh"]) == ["bash", "x.sh"]
    for bad in (["server"], ["=ns"], ["server="]):
        with pytest.raises(SystemExit, match="ROLE=NAMESPACE"):
            helpers.parse_netns(bad)


def test_a_peers_result_becomes_figures_against_the_link() -> None:
    final = {"min": 3.0, "max": 3.0, "elements": MODEL // 4, "arrays": 4}
    figures = wan_peers.figures_of(
        fake_run(final, [9.0, 6.6, 6.0]), PROFILES["wan"], "nvflare", "100MB", 2, 3,
        server_link_bytes=1_234_000_000,
    )  # fmt: skip
    assert figures.s_per_round == pytest.approx(6.3)  # median of rounds 2..N
    assert figures.link_minimum_s == pytest.approx(3.25)
    assert figures.of_link == pytest.approx(3.25 / 6.3, abs=1e-3)
    assert figures.peak_per_model == pytest.approx(3.0)  # the job's window, not "end"
    assert figures.startup_s == 12.5
    assert figures.final_model == f"all 3.0 ({MODEL // 4} weights)"
    assert (figures.server_link_mb, figures.model_traffic_mb) == (1234.0, 1200.0)
    table = wan_peers.markdown([figures])
    assert "| WAN | NVIDIA FLARE 2.9.0 | 2 | **6.30** (9.0, 6.6, 6.0) | 3.25 s | 51.6% |" in table
    assert "| 286 MiB (3.0x) | 1,234 (1,200) |" in table  # 3 x 10^8 bytes in MiB


def test_a_wrong_or_missing_final_model_is_refused() -> None:
    wrong = {"min": 2.0, "max": 3.0, "elements": MODEL // 4, "arrays": 4}
    with pytest.raises(WrongResult, match="system=flower row=wan-far-2"):
        wan_peers.figures_of(fake_run(wrong, [20.0, 20.0]), PROFILES["far"], "flower",
                             "100MB", 2, 3)  # fmt: skip
    short = {"min": 3.0, "max": 3.0, "elements": 9, "arrays": 1}
    with pytest.raises(WrongResult, match="9 weights"):
        wan_peers.figures_of(fake_run(short, [1.0]), PROFILES["lan"], "nvflare", "100MB", 2, 3)
    empty = Run(True, {"jobs": {}}, 1.0, {})
    with pytest.raises(WrongResult, match="no 100MB job"):
        wan_peers.figures_of(empty, PROFILES["lan"], "nvflare", "100MB", 2, 3)


def test_the_peer_drivers_are_plain_scripts_next_to_the_harness_ones() -> None:
    # They run in the peers' venvs: no import of fedra or bench (only their neighbours).
    for script in wan_peers.SCRIPTS.values():
        text = (PEERS_DIR / script).read_text()
        assert "import fedra" not in text and "from bench" not in text
        compile(text, script, "exec")


def test_the_pattern_model_has_no_repeated_chunk_and_checks_exactly() -> None:
    common = peer_module("_common")
    model = common.make_model("100MB", "pattern")
    chunk = 5 * 2**20 // 4  # Flower's chunks: 5 MiB
    for array in model.values():
        heads = {array[i : i + chunk].tobytes()[:4096] for i in range(0, array.size, chunk)}
        assert len(heads) == -(-array.size // chunk)  # no chunk starts like another
    # Three rounds of FedAvg on +1: initial + 3 exactly, so the summary is all 3.0.
    final = [a + np.float32(1) + np.float32(1) + np.float32(1) for a in model.values()]
    assert common.summarize(final, "pattern") == {
        "min": 3.0, "max": 3.0, "elements": MODEL // 4, "arrays": 4,
    }  # fmt: skip
    final[2][12345] += np.float32(1 / 256)  # one weight off by the pattern's step
    assert common.summarize(final, "pattern")["max"] == 3.0 + 1 / 256
    assert common.summarize(common.make_model("3x3").values())["max"] == 0.0
    del model, final


def test_flares_copy_of_the_pattern_is_the_same_as_the_common_one() -> None:
    # nvflare_job.py travels alone in the FLARE job (and imports nvflare): compare its copy.
    tree = ast.parse((PEERS_DIR / "nvflare_job.py").read_text())
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "pattern")
    namespace: dict[str, object] = {"np": np}
    exec(compile(ast.Module([function], []), "nvflare_job.py", "exec"), namespace)
    common = peer_module("_common")
    for start, count in ((0, 9), (25_000_000, 1000), (99_999_000, 1000)):
        assert np.array_equal(namespace["pattern"](start, count), common.pattern(start, count))  # type: ignore[operator]
