"""examples/he-fedavg in the simulator: encrypted FedAvg gives plain FedAvg's model, the
server's files hold only ciphertexts, and key problems end the run with a clear cause."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import fedra
from fedra.cli import main
from fedra.core import JobStatus
from fedra.he import (
    CIPHERTEXT,
    LAYOUT,
    SITE_CONTEXT_FILE,
    HEKeys,
    decrypt_params,
    load_context,
    write_kits,
)
from fedra.serverapp import load_npz

pytest.importorskip("tenseal")  # the he extra

INITIAL = np.arange(9, dtype=np.float64).reshape(3, 3)  # examples/he-fedavg initial.npz


def _expected(num_sites: int, rounds: int) -> np.ndarray:
    """Plain FedAvg's result, in closed form: site i adds i+1 with weight i+1 each round."""
    w = np.arange(1, num_sites + 1, dtype=np.float64)
    return INITIAL + rounds * float((w**2).sum() / w.sum())


def _sites(n: int) -> list[str]:
    return [f"site-{i}" for i in range(1, n + 1)]


def test_he_fedavg_example_equals_plain_fedavg(examples: Path, tmp_path: Path) -> None:
    kits = tmp_path / "kits"
    write_kits(kits, _sites(3))
    ws = tmp_path / "ws"
    summary = fedra.simulate(
        examples / "he-fedavg", n_clients=3, workspace=ws, show_progress=False, kits=kits
    )
    assert summary.status == JobStatus.FINISHED_COMPLETED, summary.site_traceback or summary.error
    secret = load_context(kits / "site-2" / "startup" / SITE_CONTEXT_FILE, secret=True)
    models = ws / "models"
    # Everything the server saved is ciphertext; the site key reads it back.
    for name, rounds in (("round-001", 1), ("round-002", 2), ("final", 3), ("best", 3)):
        saved = load_npz(models / f"{name}.npz")
        assert set(saved) == {CIPHERTEXT, LAYOUT}, name
        weights = decrypt_params(saved, secret)["weights"]
        assert weights.dtype == np.float32
        expected = _expected(3, rounds)
        np.testing.assert_allclose(weights, expected, rtol=1e-3)
        assert np.abs(weights - expected).max() < 1e-4
    # Final validation ran on the decrypted model: the sites saw the right mean.
    assert summary.final_metrics["mean_weight"] == pytest.approx(_expected(3, 3).mean(), rel=1e-5)
    # The server's kit holds the public context only.
    assert sorted(p.name for p in (kits / "server" / "startup").iterdir()) == [
        "he_public_context.tenseal"
    ]


def test_without_kits_the_run_says_where_keys_come_from(examples: Path, tmp_path: Path) -> None:
    summary = fedra.simulate(
        examples / "he-fedavg", n_clients=2, workspace=tmp_path, show_progress=False
    )
    # The server finds out first: its aggregator has no public context to load.
    assert summary.status == JobStatus.FINISHED_EXECUTION_EXCEPTION
    assert "he_weighted aggregator: no startup folder" in (summary.error or "")
    assert "--kits" in (summary.error or "")
    assert not (tmp_path / "models" / "round-001.npz").exists()


def test_a_site_with_another_key_is_refused_by_the_server(examples: Path, tmp_path: Path) -> None:
    kits = tmp_path / "kits"
    write_kits(kits, _sites(2))
    write_kits(tmp_path / "other", ["site-2"], HEKeys.generate())
    (kits / "site-2" / "startup" / SITE_CONTEXT_FILE).write_bytes(
        (tmp_path / "other" / "site-2" / "startup" / SITE_CONTEXT_FILE).read_bytes()
    )
    summary = fedra.simulate(
        examples / "he-fedavg",
        n_clients=2,
        workspace=tmp_path / "ws",
        show_progress=False,
        kits=kits,
    )
    assert summary.status != JobStatus.FINISHED_COMPLETED
    assert "another HE key" in (summary.error or "")


def test_poc_prepare_he_then_simulate_with_kits_from_the_cli(
    examples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def cli(*argv: str) -> int:
        try:
            return main(list(argv))
        except SystemExit as exc:
            return int(exc.code or 0)

    poc = tmp_path / "poc"
    assert cli("poc", "prepare", "-n", "2", "--he", "-w", str(poc)) == 0
    ws = tmp_path / "ws"
    args = ["simulate", str(examples / "he-fedavg"), "-n", "2", "-q", "-w", str(ws)]
    assert cli(*args, "--kits", str(poc)) == 0, capsys.readouterr()
    secret = load_context(poc / "site-1" / "startup" / SITE_CONTEXT_FILE, secret=True)
    final = decrypt_params(load_npz(ws / "models" / "final.npz"), secret)["weights"]
    np.testing.assert_allclose(final, _expected(2, 3), rtol=1e-3)


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_pytorch_cnn_and_cross_site_eval_under_he(examples: Path, tmp_path: Path) -> None:
    """examples/cross-site-eval (a CNN, FedAvg then CrossSiteEval) with the HE filters and
    he_weighted: the encrypted global and site models are decrypted where they are used."""
    pytest.importorskip("torch")
    job = tmp_path / "job"
    shutil.copytree(examples / "cross-site-eval", job)
    client = job / "app" / "config" / "config_fed_client.json"
    config = json.loads(client.read_text())
    config["task_data_filters"] = [{"class": "HEDecrypt"}]
    config["task_result_filters"] = [{"class": "HEEncrypt"}]
    client.write_text(json.dumps(config))
    server = job / "app" / "config" / "config_fed_server.json"
    config = json.loads(server.read_text())
    config["workflows"][0]["args"]["aggregator"] = "he_weighted"
    server.write_text(json.dumps(config))
    kits = tmp_path / "kits"
    write_kits(kits, _sites(2))
    ws = tmp_path / "ws"
    summary = fedra.simulate(
        job, n_clients=2, threads=2, workspace=ws, show_progress=False, kits=kits
    )
    assert summary.status == JobStatus.FINISHED_COMPLETED, summary.site_traceback or summary.error
    assert set(load_npz(ws / "models" / "final.npz")) == {CIPHERTEXT, LAYOUT}
    matrix = json.loads((ws / "cross_site_eval.json").read_text())["matrix"]
    assert set(matrix) == {"global", "site-1", "site-2"}
    # The decrypted global model is a trained CNN: far above chance on the shared test set.
    assert matrix["global"]["site-1"]["accuracy"] > 0.5
    assert matrix["global"]["site-1"]["accuracy"] == pytest.approx(
        summary.final_metrics["accuracy"]
    )
