"""Flow control over a WAN path (issue 16): the FL port's window lets an upload run faster
than the old fixed 256 KiB window physically allowed.

No timing of rounds: the figure for speed is in the benchmark (``make bench-wan``). What is
asserted is what the window bounds. A site's upload is HTTP/2 flow-controlled: at most one
window of data is in flight per round trip, so a 256 KiB window over a 50 ms path caps it at
5.2 MB/s whatever the machine does. The switch counts the bytes that reach the server's
host; at some moment of the job they arrive at 8x that bound or more (the default window is
16 MiB). A loaded machine only slows the hosts down, so it can fail this test but never let
the old window pass it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.netbed import PROFILES
from bench.wan_round import run
from tests.net.conftest import require_beds

pytestmark = pytest.mark.timeout(400)

#: What a 256 KiB window allows over the WAN profile's 50 ms round trip, in bytes/s.
OLD_WINDOW_CAP = (256 << 10) / (PROFILES["wan"].rtt_ms / 1e3)


def _fastest_arrival(trace: Path, span: float = 0.2) -> float:
    """The highest rate (bytes/s) at which data reached the server over ``span`` s or more."""
    rows = [re.split(r"\s+", line.strip()) for line in trace.read_text().splitlines()]
    samples = [(float(r[0]), float(r[4]) * 1e6) for r in rows if len(r) == 5]
    best = 0.0
    for i, (start, _) in enumerate(samples):
        got = 0.0
        for when, arrived in samples[i + 1 :]:
            got += arrived
            if when - start >= span:
                best = max(best, got / (when - start))
                break
    return best


def test_an_upload_over_a_wan_path_outruns_the_old_window(tmp_path: Path) -> None:
    require_beds()
    tmp_path.chmod(0o755)  # job processes run as a user of their own
    result = run("wan", "20MB", 2, 2, tmp_path, trace=True)
    assert result["status"] == "FINISHED:COMPLETED"
    assert str(result["final_model"]).startswith("ok"), result
    log = (tmp_path / "workspace" / "wan-bench" / "prod_00").glob("server1*/log.txt")
    assert any("(receive window 16777216 bytes)" in p.read_text() for p in log)
    fastest = _fastest_arrival(tmp_path / "link_trace.txt")
    assert fastest >= 8 * OLD_WINDOW_CAP, f"{fastest / 1e6:.1f} MB/s at best"
