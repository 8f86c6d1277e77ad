"""Tab completion for the admin console: command names, then each argument's candidates."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from fedra.admin.commands import BY_NAME, CONSOLE_WORDS
from fedra.admin.syntax import expected_param


class AdminCompleter(Completer):
    """Completes the first word from the command table, later words from the argument spec.

    Job ids come from ``job_ids`` (the console remembers those of its last listings), choices
    from the table, paths from the file system.
    """

    def __init__(self, job_ids: Callable[[], Iterable[str]]) -> None:
        self._job_ids = job_ids
        self._paths = PathCompleter(expanduser=True)

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        """Yield the completions of the word under the cursor."""
        text = document.text_before_cursor
        words = text.split()
        typing_new_word = not words or text[-1].isspace()
        current = "" if typing_new_word else words[-1]
        done = words if typing_new_word else words[:-1]
        if not done or done == ["?"]:
            names = [*BY_NAME, *CONSOLE_WORDS] if not done else list(BY_NAME)
            yield from _matching(sorted(names), current, suffix=" ")
            return
        command = BY_NAME.get(done[0])
        if command is None:
            return
        if current.startswith("-"):
            flags = [f for p in command.params for f in p.flags]
            yield from _matching(flags, current)
            return
        param = expected_param(command, done[1:])
        if param is None:
            return
        if param.type == "job_id":
            yield from _matching(list(dict.fromkeys(self._job_ids())), current)
        elif param.choices:
            yield from _matching(list(param.choices), current)
        elif param.type == "path":
            yield from self._paths.get_completions(Document(current), complete_event)


def _matching(candidates: Iterable[str], prefix: str, suffix: str = "") -> Iterator[Completion]:
    for candidate in candidates:
        if candidate.startswith(prefix):
            yield Completion(candidate + suffix, -len(prefix), display=candidate)
