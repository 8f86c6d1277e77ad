"""``fedra job errors`` and ``get_job``: a site's traceback reads as lines, not a JSON string."""

from __future__ import annotations

import io

from fedra.admin import find
from fedra.admin.render import make_console, show_job
from fedra.core import JobStatus
from fedra.core.admin_results import JobErrors, JobInfo

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "train.py", line 12, in <module>\n'
    "    main()\n"
    "ZeroDivisionError: division by zero\n"
)
FAILURE = {"site": "site-1", "task": "train", "traceback": TRACEBACK, "reason": "site-1 failed"}


def _shown(render, value: object) -> str:  # type: ignore[no-untyped-def]
    buffer = io.StringIO()
    render(make_console(buffer), {"job_id": "j1"}, value)
    return buffer.getvalue()


def test_job_errors_shows_the_traceback_as_lines() -> None:
    errors = JobErrors(failure=FAILURE, errors=["site-1 failed\nsecond line"])
    text = _shown(find("show_errors").show, errors)
    assert "\\n" not in text
    lines = text.splitlines()
    assert "  site: site-1" in lines
    assert "  task: train" in lines
    assert "    Traceback (most recent call last):" in lines
    assert '      File "train.py", line 12, in <module>' in lines
    assert "    ZeroDivisionError: division by zero" in lines
    assert "  - site-1 failed" in lines and "    second line" in lines


def test_job_errors_without_a_failure() -> None:
    text = _shown(find("show_errors").show, JobErrors(failure=None, errors=[]))
    assert text.splitlines() == ["failure: none", "errors: none"]


def test_get_job_shows_the_failure_traceback_as_lines() -> None:
    job = JobInfo(
        job_id="j1",
        name="n",
        status=JobStatus.FINISHED_EXECUTION_EXCEPTION,
        submitter="a",
        submitted_at=0.0,
        duration_s=1.0,
        failure=FAILURE,
    )
    text = _shown(show_job, job)
    assert "\\n" not in text
    assert "      ZeroDivisionError: division by zero" in text.splitlines()
