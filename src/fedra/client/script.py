"""ScriptExecutor: runs an unmodified training script that uses the Client API.

``launch="in_process"`` runs the script in a thread of the site's worker (fast: the natural
choice when simulating many sites); ``launch="subprocess"`` runs ``python script.py args`` as
its own process group, talking to the site over a Unix socket (isolation: a crash or an abort
never takes the site down, and abort kills the script's whole process group).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path

from fedra.client.api import _bind_thread
from fedra.client.bridge import ERROR, RESULT, SOCKET_ENV, Outcome, QueueBridge, SiteInfo
from fedra.client.executor import Executor, SiteContext
from fedra.core import ConfigError, FLModel, SiteError
from fedra.protocol import (
    FROM_SCRIPT,
    BadMessage,
    ScriptError,
    ScriptHello,
    ScriptLog,
    ScriptResult,
    ScriptStop,
    ScriptTask,
    decode_script,
    encode_script,
)

log = logging.getLogger("fedra.client")
LAUNCHES = ("in_process", "subprocess")
PARAMS_FORMATS = ("numpy", "pytorch")
ENDED, STOPPED = "ended", "stopped"
ABORT_GRACE = 1.0
_GLOBAL_LOCK = threading.Lock()  # sys.argv and sys.path are process-wide
#: Added to a script's error about None when its task carried no model.
NO_INITIAL_MODEL = (
    "\nnote: this task carried no model (model.params is None): the job has no initial "
    'model. Give the server\'s persistor one (config_fed_server.json: "persistor": '
    '{"class": "ModelPersistor", "args": {"initial_npz": "initial.npz"}} with initial.npz in '
    "the app's custom/, or FedJob.set_persistor(initial_npz=...)), or have the script build "
    "the first model when model.params is None."
)


def resolve_script(custom_dir: Path | None, script: str) -> Path:
    """The script's path inside ``custom_dir``; refuses absolute paths and '..'."""
    relative = Path(script)
    if relative.is_absolute() or ".." in relative.parts:
        raise ConfigError(f"script '{script}' must be a path inside the app's custom/ folder")
    if custom_dir is None:
        raise ConfigError(f"script '{script}': the app has no custom/ folder")
    path = (custom_dir / relative).resolve()
    if not path.is_relative_to(custom_dir.resolve()) or not path.is_file():
        raise ConfigError(f"script '{script}' not found in {custom_dir}")
    return path


def run_as_main(path: Path) -> None:
    """Run the script at ``path`` with ``__name__ == "__main__"``, in this thread.

    The script gets a module of its own that is never put in ``sys.modules``: runpy would swap
    ``sys.modules["__main__"]`` for the time of the run and put back what it found, which for
    scripts running at the same time in threads can be another script's module.
    """
    spec = importlib.util.spec_from_file_location("__main__", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load the script {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


class ScriptExecutor(Executor):
    """Hands each task to a Client API script and returns what the script sends back."""

    def __init__(
        self,
        script: str,
        args: Sequence[str] = (),
        launch: str | None = None,
        params_format: str = "numpy",
        start_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        if launch is not None and launch not in LAUNCHES:
            raise ValueError(f"launch must be one of {LAUNCHES}, got {launch!r}")
        if params_format not in PARAMS_FORMATS:
            raise ValueError(
                f"params_format must be one of {PARAMS_FORMATS}, got {params_format!r}"
            )
        self.script = script
        self.args = [str(a) for a in args]
        self.launch = launch
        self.params_format = params_format
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._outbox: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._bridge: QueueBridge | None = None
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._channel: object | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._ended: str | None = None
        self._site = ""
        self._abort: threading.Event | None = None

    def check_app(self, custom_dir: Path | None) -> None:
        """Refuse a job whose script is missing from its custom/ folder (before it runs)."""
        resolve_script(custom_dir, self.script)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self, ctx: SiteContext) -> None:
        """Start the script (a thread or a process) and wait until it is connected."""
        path = resolve_script(ctx.custom_dir, self.script)
        self._site = ctx.site_name
        self._abort = ctx.abort
        info = SiteInfo(
            ctx.site_name, ctx.site_index, ctx.num_sites, ctx.job_id, self.params_format
        )
        launch = self.launch or ctx.default_launch
        if launch == "in_process":
            self._start_thread(path, info, ctx)
        else:
            self._start_process(path, info, ctx)

    def _start_thread(self, path: Path, info: SiteInfo, ctx: SiteContext) -> None:
        bridge = QueueBridge(info, ctx.log)
        bridge.outbox = self._outbox
        self._bridge = bridge
        custom = str(path.parent)
        with _GLOBAL_LOCK:
            if custom not in sys.path:
                sys.path.insert(0, custom)

        def main() -> None:
            _bind_thread(bridge)
            detail = ""
            try:
                with _GLOBAL_LOCK:
                    sys.argv = [str(path), *self.args]
                run_as_main(path)
            except SystemExit as exc:
                if exc.code not in (0, None):
                    detail = f"the script exited with code {exc.code}"
            except BaseException as exc:
                detail = "".join(traceback.format_exception(exc))
            finally:
                _bind_thread(None)
                self._outbox.put((ENDED, None, detail))

        self._thread = threading.Thread(target=main, name=f"script-{info.site_name}", daemon=True)
        self._thread.start()

    def _start_process(self, path: Path, info: SiteInfo, ctx: SiteContext) -> None:
        from fedra.transport import accept_channel, listen_unix

        self._tmpdir = tempfile.TemporaryDirectory(prefix="fedra-")
        sock_path = os.path.join(self._tmpdir.name, "client.sock")
        listener = listen_unix(sock_path)
        env = dict(os.environ)
        env[SOCKET_ENV] = sock_path
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(path.parent), env.get("PYTHONPATH", "")) if p
        )
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        log_path = ctx.workdir / "script.log"
        with open(log_path, "ab") as log_file:
            self._proc = subprocess.Popen(
                [sys.executable, str(path), *self.args],
                cwd=ctx.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=ctx.own_process_group,
            )
        try:
            channel = accept_channel(listener, timeout=self.start_timeout)
        except Exception as exc:
            self._kill()
            raise SiteError(
                ctx.site_name, "start", f"the script did not connect: {exc}\n{_tail(log_path)}"
            ) from exc
        finally:
            listener.close()
            self._tmpdir.cleanup()  # connected or not, the socket's path is not needed now
            self._tmpdir = None
        self._channel = channel
        hello = ScriptHello(
            site_name=info.site_name,
            site_index=info.site_index,
            num_sites=info.num_sites,
            job_id=info.job_id,
            params_format=info.params_format,
        )
        channel.send(encode_script(hello))
        reader = threading.Thread(
            target=self._read,
            args=(channel, ctx, log_path),
            name=f"reader-{info.site_name}",
            daemon=True,
        )
        reader.start()

    def _read(self, channel: object, ctx: SiteContext, log_path: Path) -> None:
        from fedra.core import FedraError
        from fedra.transport import LocalChannel

        assert isinstance(channel, LocalChannel)
        error = ""
        try:
            while True:
                envelope = channel.recv()
                try:
                    message = decode_script(envelope, FROM_SCRIPT)
                except BadMessage as exc:
                    log.warning("refused a malformed message from the script: %s", exc)
                    continue
                if isinstance(message, ScriptResult):
                    self._outbox.put((RESULT, envelope.model or FLModel(), ""))
                elif isinstance(message, ScriptLog):
                    ctx.log(message.key, message.value, message.step)
                elif isinstance(message, ScriptError):
                    error = message.detail
        except FedraError:
            pass  # closed or corrupt: the process is gone or going
        code = self._proc.wait() if self._proc is not None else None
        if not error and code not in (0, None):
            error = f"the script exited with code {code}\n{_tail(log_path)}"
        self._outbox.put((ENDED, None, error))

    # -- tasks --------------------------------------------------------------------------
    def execute(self, task_name: str, data: FLModel, ctx: SiteContext) -> FLModel:
        """Give the task to the script and wait for its answer."""
        if self._ended is not None:
            raise SiteError(ctx.site_name, task_name, self._ended or "the script has ended")
        if self._bridge is not None:
            self._bridge.inbox.put((task_name, data))
        else:
            from fedra.transport import LocalChannel

            assert isinstance(self._channel, LocalChannel)
            self._channel.send(encode_script(ScriptTask(name=task_name), data))
        kind, model, detail = self._outbox.get()
        if kind == RESULT and model is not None:
            return model
        if data.params is None and "NoneType" in detail:
            detail += NO_INITIAL_MODEL
        if kind == ENDED:
            self._ended = detail or "the script ended before sending a result"
            raise SiteError(ctx.site_name, task_name, self._ended)
        if kind == ERROR:
            raise SiteError(ctx.site_name, task_name, detail)
        raise SiteError(ctx.site_name, task_name, "the site was stopped")

    def stop(self) -> None:
        """Tell the script the job is over; wait for it, then kill what is left."""
        self._outbox.put((STOPPED, None, ""))
        try:
            if self._bridge is not None:
                self._bridge.inbox.put(None)
                if self._thread is not None:
                    # A thread cannot be killed: after an abort, leave a busy script behind
                    # (a daemon thread) rather than hold the user up.
                    self._thread.join(self._grace())
            if self._proc is not None:
                self._stop_process()
        finally:
            if self._tmpdir is not None:
                self._tmpdir.cleanup()
                self._tmpdir = None

    def _stop_process(self) -> None:
        from fedra.core import FedraError
        from fedra.transport import LocalChannel

        assert self._proc is not None
        channel = self._channel if isinstance(self._channel, LocalChannel) else None
        try:
            if channel is not None:
                channel.send(encode_script(ScriptStop()))
        except (OSError, FedraError):
            pass  # the script is already gone
        try:
            self._proc.wait(self._grace())
        except subprocess.TimeoutExpired:
            self._kill()
        finally:
            if channel is not None:
                channel.close()

    def _grace(self) -> float:
        """How long a script may take to end: short after an abort."""
        aborted = self._abort is not None and self._abort.is_set()
        return min(ABORT_GRACE, self.stop_timeout) if aborted else self.stop_timeout

    def _kill(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(self._proc.pid) == self._proc.pid:
                os.killpg(self._proc.pid, signal.SIGKILL)  # its own group: all of it
            else:
                self._proc.kill()
        self._proc.wait()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
