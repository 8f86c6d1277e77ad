"""The console, scripted through a non-TTY stdin, against the fake server."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from admin_fakes import FakeServer
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from fedra.admin import AdminConsole, Session
from fedra.admin.completion import AdminCompleter


def run(session: Session, *lines: str) -> tuple[int, str, str, AdminConsole]:
    out, err = io.StringIO(), io.StringIO()
    console = AdminConsole(
        session, stdin=io.StringIO("\n".join(lines) + "\n"), stdout=out, stderr=err
    )
    code = console.run()
    return code, out.getvalue(), err.getvalue(), console


def test_login_lines_go_to_stderr_when_piped(session: Session) -> None:
    code, out, err, _ = run(session, "bye")
    assert code == 0 and out == ""
    assert err.splitlines() == [
        "Connected to server localhost:8003 as admin@nvidia.com (project_admin)",
        'Type ? to list commands; type "? cmdName" to show usage of a command.',
    ]


def test_list_jobs_prints_a_table(session: Session) -> None:
    code, out, _, console = run(session, "list_jobs")
    assert code == 0
    assert "Job ID" in out and "a1b2c3" in out and "FINISHED:COMPLETED" in out
    assert "2023-11-14" in out or "2023-11-15" in out  # submitted_at, local time
    assert console.job_ids == ["a1b2c3", "d4e5f6"]


def test_detailed_listing_shows_history(session: Session) -> None:
    _, out, _, _ = run(session, "list_jobs -d -n d4")
    assert "d4e5f6" in out and "a1b2c3" not in out
    assert "history of d4e5f6:" in out and "SUBMITTED" in out


def test_check_status_server_and_client(session: Session) -> None:
    _, out, _, _ = run(session, "check_status server", "check_status client")
    assert "Engine status: started" in out and "Registered clients: 2" in out
    assert "site-1, site-2" in out
    assert "Last seen" in out and "1.5 s ago" in out


def test_text_commands_print_plain_text(session: Session) -> None:
    _, out, _, _ = run(session, "tail site-1 -n 2", "cat server log.txt")
    assert out == "site-1 line 0\nsite-1 line 1\ncontents of log.txt\n"


def test_json_format_parses(session: Session) -> None:
    _, out, _, _ = run(session, "list_jobs --format json")
    assert [j["job_id"] for j in json.loads(out)] == ["a1b2c3", "d4e5f6"]
    _, out, _, _ = run(session, "clone_job a1b2c3 --format json")
    assert json.loads(out) == {"job_id": "clone1"}


def test_job_commands_print_one_line(session: Session, tmp_path: Path) -> None:
    _, out, _, _ = run(
        session,
        "abort_job d4e5f6",
        "clone_job a1b2c3",
        "delete_job clone1",
        f"download_job a1b2c3 -o {tmp_path}",
        "shutdown client site-1",
        "remove_client site-2",
    )
    assert out.splitlines() == [
        "Abort requested: job d4e5f6 is FINISHED:ABORTED",
        "Cloned job a1b2c3 as clone1",
        "Deleted job clone1",
        f"Downloaded job a1b2c3 to {tmp_path / 'a1b2c3'}",
        "Shutdown requested: client site-1",
        "Removed client site-2",
    ]


def test_errors_are_one_line_and_the_console_goes_on(session: Session) -> None:
    code, out, err, _ = run(
        session, "foo", "get_job", "abort_job a1b2c3", "get_job nope", "list_jobs"
    )
    assert err.splitlines()[2:] == [
        "error: unknown command 'foo'; type ? for the list of commands",
        "error: get_job: missing JOB_ID; usage: get_job JOB_ID",
        "error: job a1b2c3 already finished",
        "hint: nothing to abort",
        "error: no job nope",
        "hint: list_jobs shows the jobs",
    ]
    assert "d4e5f6" in out  # the last command still ran
    assert code == 2  # the first failure's exit code: a usage error


def test_server_refusal_sets_exit_code_8(session: Session) -> None:
    code, _, _, _ = run(session, "get_job nope")
    assert code == 8


def test_help_lists_commands_and_usage(session: Session) -> None:
    _, out, _, _ = run(session, "?", "? list_jobs", "?download_job")
    assert "check_status" in out and "submit_job" in out and "bye" in out
    assert "usage: list_jobs [-d] [-n PREFIX]" in out
    assert "same as: fedra job list" in out
    assert "usage: download_job JOB_ID [-o DIR]" in out


def test_bye_stops_reading(session: Session, server: FakeServer) -> None:
    run(session, "bye", "list_jobs")
    assert server.requests == []


def test_comments_and_blank_lines_are_skipped(session: Session, server: FakeServer) -> None:
    code, _, _, _ = run(session, "", "# a comment", "   ")
    assert code == 0 and server.requests == []


def test_unbalanced_quotes_are_a_usage_error(session: Session) -> None:
    code, _, err, _ = run(session, 'cat server "log.txt')
    assert "error: cannot read the line: No closing quotation" in err and code == 2


def completions(completer: AdminCompleter, text: str) -> list[str]:
    document = Document(text, len(text))
    return [c.text.strip() for c in completer.get_completions(document, CompleteEvent())]


def test_completer_offers_commands_then_job_ids() -> None:
    completer = AdminCompleter(lambda: ["a1b2c3", "d4e5f6"])
    assert completions(completer, "li") == ["list_jobs", "list_sp"]
    document = Document("li", 2)
    assert [c.text for c in completer.get_completions(document, CompleteEvent())] == [
        "list_jobs ",
        "list_sp ",
    ]
    assert "bye" in completions(completer, "")
    assert completions(completer, "? sh") == [
        "show_errors",
        "show_stats",
        "shutdown",
        "shutdown_system",
    ]
    assert completions(completer, "get_job ") == ["a1b2c3", "d4e5f6"]
    assert completions(completer, "abort_job d") == ["d4e5f6"]
    assert completions(completer, "check_status c") == ["client"]
    assert completions(completer, "list_jobs --d") == ["--detailed"]
    assert completions(completer, "nosuch ") == []


def test_history_falls_back_to_memory(tmp_path: Path) -> None:
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    from fedra.admin.console import open_history

    assert isinstance(open_history(tmp_path / "h" / "admin_history"), FileHistory)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert isinstance(open_history(blocker / "admin_history"), InMemoryHistory)


@pytest.mark.parametrize("line", ["exit", "quit", "bye"])
def test_exit_words(session: Session, line: str) -> None:
    assert AdminConsole(session, stdin=io.StringIO(), stdout=io.StringIO()).handle(line) is False
