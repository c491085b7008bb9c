"""I/O: the only importer of yt_dlp — lazily, in worker processes, killed when they overrun."""

from __future__ import annotations

import asyncio
import copy
import multiprocessing
import os
import re
import threading
import weakref
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from monitor.errors import ParseError
from monitor.http import FetchError

MAX_WORKERS = 4  # extractions at once per event loop, and idle workers kept
RECYCLE_AFTER = 50  # extractions before a worker is replaced
MAX_AUDIO_BYTES = 500_000_000
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HTTP_STATUS = re.compile(r"HTTP Error (\d{3})")
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


# Set by `monitor fetch --replay` / `monitor record`: answers come from, or go to, a recording.
_replay: dict[tuple[str, bool], dict[str, Any]] | None = None
_record_dir: Path | None = None
_saved: list[Path] = []


def use_recording(answers: dict[tuple[str, bool], dict[str, Any]] | None) -> None:
    """Answer every extraction from recorded info dicts; an unrecorded URL fails."""
    global _replay
    _replay = answers


def record_to(directory: str | Path | None) -> list[Path]:
    """Save every successful extraction's info dict in `directory`; the list fills as it goes."""
    global _record_dir
    _record_dir = Path(directory) if directory is not None else None
    if _record_dir is not None:
        _saved.clear()
    return _saved


def options(*, flat: bool, timeout: float, opts: dict[str, Any] | None = None) -> dict[str, Any]:
    """The YoutubeDL parameters: metadata only, quiet, no files written, bounded sockets."""
    params: dict[str, Any] = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "skip_download": True,
        "simulate": True,
        "cachedir": False,  # no writes under ~/.cache: the daemon may run read-only
        "socket_timeout": max(1.0, min(timeout / 2, 30.0)),
        "retries": 1,
        "extractor_retries": 1,
        "extract_flat": "in_playlist" if flat else False,
        "lazy_playlist": True,
        # Metadata and captions are wanted even when no format is playable here (a missing
        # JavaScript runtime for YouTube signatures, geo blocks on the streams).
        "ignore_no_formats_error": True,
        "check_formats": False,
        "color": {"stderr": "no_color", "stdout": "no_color"},
    }
    params.update(opts or {})
    return params


async def extract(
    url: str,
    *,
    flat: bool,
    timeout: float,
    opts: dict[str, Any] | None = None,
    allow_private: bool = True,
    trusted_host: str | None = None,
) -> dict[str, Any]:
    """yt-dlp's info dict for `url` (JSON-safe, as `--dump-json` prints it), without downloading.

    `flat` lists a playlist or channel without extracting each entry. Runs in a worker process,
    because a thread cannot be stopped: a stuck extraction in a thread would hold it forever,
    while a worker that overruns `timeout` is killed and replaced. Workers are kept between
    extractions, since a fresh one spends about a second compiling yt-dlp's URL patterns.

    Raises FetchError (timeouts, network and site errors, `status` set when yt-dlp names an
    HTTP code) or ParseError (a URL no extractor understands).

    yt-dlp does its own networking, past the monitor's HTTP client: with `allow_private`
    false the worker refuses connections to private, loopback, link-local and metadata
    addresses, except those of `trusted_host` (the host the user configured).
    """
    if _replay is not None:
        info = _replay.get((url, flat))
        if info is None:
            raise FetchError(f"yt-dlp: no recorded answer for {url} (flat={flat})")
        return copy.deepcopy(info)
    params = options(flat=flat, timeout=timeout, opts=opts)
    params[_GUARD_KEY] = None if allow_private else trusted_host or ""
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(MAX_WORKERS)
    taken: list[_Worker] = []

    def job() -> tuple[str, Any]:
        worker = _take()
        taken.append(worker)
        return worker.run(url, params, timeout)

    async with slots:
        try:
            status, payload = await asyncio.to_thread(job)
        except asyncio.CancelledError:
            for worker in taken:
                worker.proc.kill()  # the waiting thread sees EOF and returns at once
            raise
    if status == "ok":
        if _record_dir is not None:
            from monitor.recording import save_ytdlp

            _saved.append(save_ytdlp(_record_dir, url, flat, payload))
        return payload
    if status == "unsupported":
        raise ParseError(f"yt-dlp: {payload}")
    m = _HTTP_STATUS.search(payload or "")
    raise FetchError(f"yt-dlp: {payload}", status=int(m.group(1)) if m else None)


def download_audio(url: str, directory: str, *, timeout: float, max_seconds: float) -> str:
    """Blocking: download the audio of `url` (best audio, else the whole file) into `directory`
    and return its path. For worker processes (speech to text), never the event loop.

    Live streams and media longer than `max_seconds` are refused before anything is fetched.
    """
    from yt_dlp import YoutubeDL
    from yt_dlp.utils import match_filter_func

    params = options(flat=False, timeout=timeout)
    params.update(
        skip_download=False,
        simulate=False,
        format="bestaudio/best",
        outtmpl={"default": os.path.join(directory, "audio.%(ext)s")},
        noplaylist=True,
        overwrites=True,
        max_filesize=MAX_AUDIO_BYTES,
        # `<?`: a page's HTML5 video has no known duration, and that is no reason to refuse it.
        match_filter=match_filter_func(f"!is_live & duration <? {int(max_seconds)}"),
        logger=_Quiet(),
    )
    try:
        with YoutubeDL(params) as ydl:
            info = ydl.extract_info(url, download=True)
    except Exception as e:  # noqa: BLE001 - becomes a readable reason
        kind, reason = _describe(e)
        raise (ParseError if kind == "unsupported" else FetchError)(f"yt-dlp: {reason}") from None
    downloads = (info or {}).get("requested_downloads") or []
    path = downloads[0].get("filepath") if downloads else None
    if not path or not os.path.exists(path):
        raise FetchError(f"yt-dlp: nothing downloaded (live, or longer than {max_seconds:g}s?)")
    return str(path)


def shutdown() -> None:
    """Stop the idle workers (busy ones stop when their extraction ends or times out)."""
    with _lock:
        idle, _idle[:] = list(_idle), []
    for w in idle:
        w.stop()


def _context() -> multiprocessing.context.BaseContext:
    # forkserver: workers start from a clean single-threaded server, never by forking the
    # daemon's threads; spawn where there is no fork server (Windows, macOS without it).
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["yt_dlp"])  # effective only before the server starts
        return ctx
    return multiprocessing.get_context("spawn")


class _Worker:
    """One process that extracts, one request at a time, until it is recycled or killed."""

    def __init__(self) -> None:
        mp = _context()
        self.conn, child = mp.Pipe()
        self.proc = mp.Process(target=_serve, args=(child,), daemon=True, name="yt-dlp")
        self.proc.start()
        child.close()
        self.jobs = 0

    def run(self, url: str, params: dict[str, Any], timeout: float) -> tuple[str, Any]:
        """Blocking: the worker's answer, or an error once it has been killed at `timeout`."""
        try:
            self.conn.send((url, params))
            if not self.conn.poll(timeout):
                self.stop()
                return "error", f"timed out after {timeout:g}s (extraction stopped)"
            result = self.conn.recv()
        except (EOFError, OSError):
            self.stop()
            return "error", f"extraction process ended (exit code {self.proc.exitcode})"
        self.jobs += 1
        _give_back(self)
        return result

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.conn.close()


_idle: list[_Worker] = []
_lock = threading.Lock()


def _take() -> _Worker:
    with _lock:
        while _idle:
            w = _idle.pop()
            if w.proc.is_alive():
                return w
            w.stop()
    return _Worker()


def _give_back(w: _Worker) -> None:
    # Recycled now and then: yt-dlp keeps caches that only grow in a long-lived process.
    if w.jobs < RECYCLE_AFTER and w.proc.is_alive():
        with _lock:
            if len(_idle) < MAX_WORKERS:
                _idle.append(w)
                return
    w.stop()


def _serve(conn: Connection) -> None:
    """In the worker: answer (url, params) requests with ("ok", info) or (kind, reason)."""
    while True:
        try:
            url, params = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        try:
            result: tuple[str, Any] = ("ok", _extract_here(url, params))
        except BaseException as e:  # noqa: BLE001 - everything goes back as a readable reason
            result = _describe(e)
        try:
            conn.send(result)
        except (OSError, KeyboardInterrupt):
            return
        except Exception as e:  # noqa: BLE001 - an unpicklable value in the info dict
            conn.send(("error", f"could not return the result: {type(e).__name__}: {e}"))


class _Quiet:
    """A yt-dlp logger that says nothing: errors come back as the exception's message."""

    def debug(self, msg: str) -> None:
        pass

    info = warning = error = debug


def _extract_here(url: str, params: dict[str, Any]) -> dict[str, Any]:
    from yt_dlp import YoutubeDL

    params = dict(params)
    _guard_sockets(params.pop(_GUARD_KEY, None))
    try:
        with YoutubeDL({**params, "logger": _Quiet()}) as ydl:
            info = ydl.extract_info(url, download=False)
            if info is None:
                raise RuntimeError("no information extracted")
            return ydl.sanitize_info(info)
    finally:
        _policy["active"] = False


# In the worker process only (it runs nothing but yt-dlp, so patching its sockets is contained):
# the address policy of the current extraction.
_GUARD_KEY = "_monitor_trusted_host"  # None: no guard; else the trusted host ("" for none)
_policy: dict[str, Any] = {"active": False, "trusted": frozenset(), "installed": False}


def _guard_sockets(trusted_host: str | None) -> None:
    import socket

    if trusted_host is None:
        _policy["active"] = False
        return
    trusted: set[str] = set()
    if trusted_host:
        try:
            trusted = {ai[4][0] for ai in socket.getaddrinfo(trusted_host, None)}
        except OSError:
            trusted = set()
    _policy.update(active=True, trusted=frozenset(trusted))
    if _policy["installed"]:
        return
    from monitor.netguard import address_problem

    def checked(method: Any) -> Any:
        def connect(self: socket.socket, address: Any) -> Any:
            if (
                _policy["active"]
                and self.family in (socket.AF_INET, socket.AF_INET6)
                and isinstance(address, tuple)
                and address[0] not in _policy["trusted"]
            ):
                problem = address_problem(address[0])
                if problem:
                    raise ConnectionRefusedError(
                        f"refused to connect to {address[0]}: {problem} "
                        "(set [monitor] allow_private = true to allow it)"
                    )
            return method(self, address)

        return connect

    socket.socket.connect = checked(socket.socket.connect)  # type: ignore[method-assign]
    socket.socket.connect_ex = checked(socket.socket.connect_ex)  # type: ignore[method-assign]
    _policy["installed"] = True


def _describe(e: BaseException) -> tuple[str, str]:
    text = _ANSI.sub("", str(e)).strip() or type(e).__name__
    text = text.removeprefix("ERROR:").strip()
    # yt-dlp appends the underlying exception's repr; the first part is the readable one.
    text = re.sub(r"\s*\(caused by .*\)\s*$", "", text, flags=re.S)
    text = text.split("; please report this issue")[0]
    if "Unsupported URL" in text:
        return "unsupported", text
    if type(e).__module__.startswith("yt_dlp"):
        return "error", text
    return "error", f"{type(e).__name__}: {text}"
