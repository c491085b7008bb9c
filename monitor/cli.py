"""Commands: parse arguments, call one library function, print human or --json, exit 0/1/2."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from monitor.errors import ArchiveError, SetupError

if TYPE_CHECKING:
    from monitor.config import Config

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
log = logging.getLogger("monitor")


class UsageError(Exception):
    pass


def _add_globals(p: argparse.ArgumentParser, top: bool) -> None:
    # Accepted before and after the command (`monitor --config X fetch` and `monitor fetch
    # --config X`); on subcommands the default is suppressed so it can't undo the top-level one.
    d = None if top else argparse.SUPPRESS
    p.add_argument("--config", metavar="PATH", default=d,
                   help="configuration file (default: $MONITOR_CONFIG, ./monitor.toml, ./config/monitor.toml)")  # fmt: skip
    p.add_argument(
        "--db",
        metavar="PATH",
        default=d,
        help="archive: a file, or a postgresql:// URL (overrides [monitor] database)",
    )
    p.add_argument("-v", "--verbose", action="count", default=0 if top else argparse.SUPPRESS,
                   help="more logging on stderr")  # fmt: skip
    p.add_argument("-q", "--quiet", action="count", default=0 if top else argparse.SUPPRESS,
                   help="less output")  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose own usage errors (a bad --limit, an unknown option) also
    answer `--json` with a JSON document: a script reading stdout must not get nothing."""

    def __init__(self, *args: Any, json_errors: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.json_errors = json_errors

    def error(self, message: str) -> NoReturn:
        if self.json_errors:
            _print_json({"ok": False, "error": message})
        super().error(message)


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return n


def build_parser(json_errors: bool = False) -> argparse.ArgumentParser:
    from monitor import __version__

    parser = _Parser(
        prog="monitor",
        description="Watch news outlets, archive their posts, alert on saved queries.",
        json_errors=json_errors,
    )
    parser.add_argument("--version", action="version", version=f"outlet-monitor {__version__}")
    _add_globals(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, json_errors=json_errors)
        _add_globals(p, top=False)
        return p

    p = command("fetch", "one pass over all (or the named) sources: fetch, store, match, alert")
    p.add_argument("source_ids", nargs="*", metavar="SOURCE_ID")
    p.add_argument("--no-alerts", action="store_true", help="record matches but send nothing")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--replay", metavar="DIR", help="answer from recorded exchanges in DIR")

    p = command(
        "run", "daemon: each source on its own schedule, alerts delivered in the background"
    )
    p.add_argument("--only", metavar="ROLES", default="fetch,deliver,transcribe",
                   help="fetch, deliver, transcribe, or several, joined by commas (all three, "
                        "the default)")  # fmt: skip

    p = command("search", "full-text search of the archive (same query language as alerts)")
    p.add_argument("query", metavar="QUERY", nargs="+", help="the query; its words may be unquoted")
    p.add_argument("--source", metavar="ID")
    p.add_argument("--since", metavar="WHEN",
                   help="published on or after: YYYY-MM-DD, an ISO time, or a duration ago (2d)")  # fmt: skip
    p.add_argument("--limit", type=_positive, default=20, metavar="N")
    p.add_argument("--json", action="store_true")

    p = command(
        "sources", "each source: type, schedule, last success and error, failures, posts, next due"
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--opml", action="store_true", help="every feed, sitemap and page as OPML")

    p = command("import", "add the feeds of an OPML file to the configuration as sources")
    p.add_argument("file", metavar="FILE.opml")
    p.add_argument("--dry-run", action="store_true", help="say what would be added; write nothing")
    p.add_argument("--json", action="store_true")

    p = command("alerts", "the delivery outbox")
    p.add_argument("--status", choices=["pending", "sent", "failed"])
    p.add_argument(
        "--retry", action="store_true", help="deliver pending (and failed) deliveries now"
    )
    p.add_argument("--limit", type=_positive, default=50, metavar="N")
    p.add_argument("--json", action="store_true")

    p = command("check", "validate the configuration; print every problem with its key")
    p.add_argument("--json", action="store_true")

    p = command("health", "exit 0 when the daemon is alive and doing its job, else 1 with why")
    p.add_argument("--max-silence", metavar="DURATION", default="90s",
                   help="longest time without a daemon heartbeat (default 90s)")  # fmt: skip
    p.add_argument("--max-failing", metavar="SHARE", type=float, default=0.5,
                   help="share of sources failing that is unhealthy (default 0.5)")  # fmt: skip
    p.add_argument("--max-backlog", metavar="DURATION", default="1h",
                   help="age of the oldest pending delivery that is unhealthy (default 1h)")  # fmt: skip
    p.add_argument("--json", action="store_true")

    p = command("workers", "the daemons on this archive: live, stopped or silent, with roles")
    p.add_argument("--all", action="store_true", help="also those that stopped or went silent")
    p.add_argument("--json", action="store_true")

    p = command("record", "fetch one source live and save every exchange in DIR")
    p.add_argument("source_id", metavar="SOURCE_ID")
    p.add_argument("directory", metavar="DIR")

    p = command("migrate", "copy the SQLite archive, history and outbox, into a PostgreSQL one")
    p.add_argument("--to", required=True, metavar="URL", help="postgresql://user:pw@host/db")
    p.add_argument("--json", action="store_true")
    return parser


def run() -> None:
    """The `monitor` command: main(), then exit without tearing the interpreter down.

    By then every file and the database are closed and the workers stopped; freeing every
    module and a big pass's objects one by one would only delay the exit code (about 20 ms
    after a 6,000-post pass). With another thread still running, exit the usual way, which
    waits for it.
    """
    code = main()
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        raise SystemExit(code)
    with contextlib.suppress(BrokenPipeError):  # the reader left: nothing more to say
        sys.stdout.flush()
        sys.stderr.flush()
    logging.shutdown()
    import os

    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    argv = _query_words_last(argv)
    parser = build_parser(json_errors="--json" in argv)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    level = logging.WARNING - 10 * args.verbose + 10 * args.quiet
    # Log times are UTC, written as the times in the messages and the archive are: a daemon's
    # "12:01 ... next at 06:31Z" in the machine's own zone reads as a schedule gone wrong.
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=[handler])
    import sqlite3

    from monitor.config import ConfigError

    handler = COMMANDS[args.command]
    try:
        return handler(args)
    except ConfigError as e:
        print(f"monitor: configuration error in {_config_path(args)}:", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        if getattr(args, "json", False):
            _print_json({"ok": False, "config": str(_config_path(args)), "problems": e.problems})
        return EXIT_USAGE
    except (UsageError, ArchiveError, SetupError) as e:
        print(f"monitor: {e}", file=sys.stderr)
        if getattr(args, "json", False):  # a script reading stdout gets a document, not nothing
            _print_json({"ok": False, "error": str(e)})
        return EXIT_USAGE
    except sqlite3.DatabaseError as e:
        # Found while reading (a page garbled on disk, a table gone): the archive is named,
        # with what can be done, rather than a traceback.
        message = _archive_trouble(getattr(args, "database", None), e)
        print(f"monitor: {message}", file=sys.stderr)
        if getattr(args, "json", False):
            _print_json({"ok": False, "error": message})
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `monitor sources | head`: the reader left; say nothing more, and don't let the
        # interpreter's final flush of stdout raise again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


# The options that take a value, wherever they stand: a word after one is its value.
_VALUE_OPTIONS = {"--config", "--db", "--source", "--since", "--limit"}


def _query_words_last(argv: list[str]) -> list[str]:
    """`search`'s arguments with its query words after a `--`, so that a query may start with
    `-` (`monitor search -exercise NATO`): argparse would read `-exercise` as an option."""
    if "search" not in argv:
        return argv
    at = argv.index("search")
    options, words = list(argv[: at + 1]), []
    rest = iter(argv[at + 1 :])
    for arg in rest:
        if arg == "--":
            words.extend(rest)
        elif arg in _VALUE_OPTIONS:
            options += [arg, next(rest, "")]
        elif arg.startswith("--") or arg in ("-h", "-v", "-q") or re.fullmatch(r"-v+|-q+", arg):
            options.append(arg)
        else:
            words.append(arg)
    return [*options, "--", *words] if words else options


def _archive_trouble(path: str | None, e: Exception) -> str:
    name = getattr(e, "sqlite_errorname", "") or ""
    where = f"the archive {path}" if path else "the archive"
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return (
            f"{where} is damaged ({e}): restore it from a backup, or keep what can be read "
            f"with `sqlite3 {path or 'ARCHIVE'} .recover`"
        )
    return f"{where}: {e}"


def _config_path(args: argparse.Namespace) -> Path:
    from monitor.config import default_config_path

    return Path(args.config) if args.config else default_config_path()


def _existing_config_path(args: argparse.Namespace) -> Path:
    import os

    path = _config_path(args)
    if not args.config and "MONITOR_CONFIG" not in os.environ and not path.exists():
        raise UsageError(
            "no configuration: none at ./monitor.toml or ./config/monitor.toml "
            "(give --config PATH or set MONITOR_CONFIG)"
        )
    return path


def _load(args: argparse.Namespace, *, need_notifiers: bool = True) -> Config:
    """The configuration; without `need_notifiers`, for a command that sends nothing, a
    notifier whose ${VAR} is unset here is left out rather than refused."""
    import dataclasses

    from monitor.config import load_config

    path = _existing_config_path(args)
    config = load_config(path, need_notifiers=need_notifiers)
    if config.secrets:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_RedactLogs(config))
    from monitor.archive import is_url

    if args.db and not is_url(args.db):
        # A directory named on the command line is not made: a typo would start a new,
        # empty archive beside the real one.
        where = Path(args.db).parent
        if where.exists() and not where.is_dir():
            raise UsageError(f"--db: {where} is a file, not a directory")
        if not where.is_dir():
            raise UsageError(f"--db: there is no directory {where} (make it first)")
    if args.db:
        config = dataclasses.replace(
            config, monitor=dataclasses.replace(config.monitor, database=args.db)
        )
    args.database = config.database  # for an archive error's message
    return config


class _RedactLogs(logging.Filter):
    """Values from ${VAR} are `***` in every log line, httpx's request lines included."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = self.config.redact(message)
        if hidden != message:
            record.msg, record.args = hidden, None
        return True


def _count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


def _run(coro: Any) -> Any:
    # Here, not at the top: `monitor --help` should not pay for an event loop.
    from monitor import eventloop

    # The result comes back beside the task, not as its result: the runner's last call to
    # signal.signal() makes Enum format the repr of the finished task, result included, for
    # an error it then discards (0.3 s for a pass that matched 20,000 posts).
    result: list[Any] = []

    async def main() -> None:
        result.append(await coro)

    eventloop.run(main())
    return result[0]


def _print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")


# -- commands --------------------------------------------------------------------------------


def cmd_fetch(args: argparse.Namespace) -> int:
    # Started first, so that its imports overlap with reading the configuration.
    worker = _parse_worker(args)
    try:
        return _fetch(args, worker)
    finally:
        if worker is not None:
            # Killed by the pass, and reaped only now, after the archive closed (aclose).
            worker.stop()


def _parse_worker(args: argparse.Namespace) -> Any:
    """A parse worker for a pass over several sources on a machine with more than one core."""
    import os

    if (os.cpu_count() or 1) < 2 or len(args.source_ids) == 1:
        return None
    from monitor.parsework import ParseWorker

    try:
        return ParseWorker.start()
    except OSError as e:  # no process can be started here: parse in this one
        log.warning("parsing in this process: cannot start the parse worker (%s)", e)
        return None


def _fetch(args: argparse.Namespace, worker: Any) -> int:
    from monitor.runner import fetch_pass, make_http, open_store, select_sources

    config = _load(args, need_notifiers=not args.no_alerts)
    unknown = [i for i in args.source_ids if i not in config.sources]
    if unknown:
        from monitor.config import did_you_mean

        raise UsageError(
            f"no source {', '.join(map(repr, unknown))} in the configuration"
            + (did_you_mean(unknown[0], list(config.sources)) if len(unknown) == 1 else "")
        )
    sources = select_sources(config, args.source_ids)
    if args.no_alerts:
        import dataclasses

        # As with `notify = []`: the matches are recorded, and nothing is queued to be sent.
        # A queued delivery would go out with the next pass or `monitor run`, so a pass meant
        # to fill the archive quietly would only have put its alerts off.
        alerts = {aid: dataclasses.replace(a, notify=[]) for aid, a in config.alerts.items()}
        config = dataclasses.replace(config, alerts=alerts)
    if worker is not None and len(sources) < 2:
        worker.stop()
        worker = None
    transport = None
    if args.replay:
        from monitor import ytdlp
        from monitor.recording import ReplayTransport, load_exchanges, load_ytdlp

        try:
            transport = ReplayTransport(load_exchanges(args.replay))
            ytdlp.use_recording(load_ytdlp(args.replay))
        except (OSError, ValueError) as e:
            raise UsageError(f"--replay: {e}") from None
    store = open_store(config)
    # What a replay queues is what its note counts: not what earlier passes left pending.
    pending_before = store.pending_deliveries() if args.replay else 0

    import asyncio

    done: list[Any] = []
    signals: list[int] = []
    progress = _Progress(len(sources)) if _shows_progress(args, len(sources)) else None

    def on_done(result: Any) -> None:
        done.append(result)
        if progress is not None:
            progress.show(done)

    async def go() -> Any:
        import signal

        # SIGTERM stops the pass as Ctrl-C does: cancelled, each source's fetch logged as
        # interrupted, rather than the process gone without a word.
        me = asyncio.current_task()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(
                signal.SIGTERM, lambda: (signals.append(signal.SIGTERM), me and me.cancel())
            )
        if worker is not None:
            await worker.attach()
        try:
            async with make_http(config, transport) as http:
                # A replay stands in for the outlets, not for the desk's mail server or
                # webhook: what it matches waits in the outbox rather than going out.
                return await fetch_pass(
                    config, store, http, sources,
                    deliver=not args.no_alerts and not args.replay, parser=worker,
                    on_done=on_done,
                )  # fmt: skip
        finally:
            if worker is not None:
                await worker.aclose()

    held = 0
    import gc

    # What start-up made (modules, the configuration) outlives the pass: frozen, it is left
    # out of the collections the pass's allocations set off, each of which walked it (as in
    # the daemon, schedule.py). The main process's collections in a warm pass of 2,000
    # feeds: 0.118 -> 0.089 s of CPU. Thawed after, for a caller that runs several passes.
    gc.freeze()
    try:
        outcome = _run(go())
        if args.replay and not args.no_alerts:
            held = store.pending_deliveries() - pending_before
    except (KeyboardInterrupt, asyncio.CancelledError):
        if progress is not None:
            progress.clear()
        _say_interrupted(done, sources, args)
        return 143 if signals else 130
    finally:
        gc.unfreeze()
        if progress is not None:
            progress.clear()
        store.close()
        if args.replay:
            from monitor import ytdlp

            ytdlp.use_recording(None)
    if args.json:
        posts, snippets = _matched_posts(outcome, config.database, every=True)
        _print_json(
            {
                "ok": outcome.ok,
                "match_error": outcome.match_error,
                "sources": [
                    {
                        "id": r.source_id, "ok": r.ok, "new": r.new, "updated": r.updated,
                        "http_status": r.http_status, "not_modified": r.not_modified,
                        "error": r.error, "seconds": round(r.seconds, 3),
                        "next_attempt_at": r.next_attempt_at, "notices": r.notices,
                        "matches": [_match_doc(m, posts, snippets) for m in r.matches],
                    }
                    for r in outcome.sources
                ],
                "health": [e.payload for e in outcome.health],
                "deliveries": None if outcome.outbox is None else {
                    "sent": outcome.outbox.sent, "retrying": outcome.outbox.retrying,
                    "failed": outcome.outbox.failed, "errors": outcome.outbox.errors,
                },
            }
        )  # fmt: skip
    elif not args.quiet:
        posts, snippets = _matched_posts(outcome, config.database, every=False)
        _print_fetch_summary(outcome, posts, snippets, config)
        if args.replay:  # the offline demo's next step: its archive is not the default one
            query = next((a.query for a in config.alerts.values()), "NATO")
            where = f" --config {args.config}" if args.config else ""
            print(f"search what it stored: monitor search {shlex.quote(query)}{where}"
                  + (f" --db {args.db}" if args.db else ""))  # fmt: skip
    if held:
        print(
            f"monitor: a replayed pass sends no alerts; {held} "
            f"{'delivery waits' if held == 1 else 'deliveries wait'} in the outbox "
            "(`monitor alerts --retry` sends them)",
            file=sys.stderr,
        )
    return EXIT_OK if outcome.ok else EXIT_FAILED


# A pass over more sources than this shows a progress line on a terminal.
PROGRESS_FROM = 4


def _shows_progress(args: argparse.Namespace, sources: int) -> bool:
    """Live progress only for a person watching: a terminal, not --json, -q or a pipe."""
    return sources >= PROGRESS_FROM and not args.json and not args.quiet and sys.stderr.isatty()


class _Progress:
    """One line on stderr, redrawn as sources finish, and wiped before the summary."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.drawn = False
        self.last = 0.0

    def show(self, done: list[Any]) -> None:
        now = time.monotonic()
        if now - self.last < 0.1 and len(done) < self.total:  # a terminal redraws at 10 Hz
            return
        self.last = now
        failed = sum(not r.ok for r in done)
        new = sum(r.new for r in done)
        sys.stderr.write(
            f"\r\x1b[Kfetching: {len(done)}/{self.total} sources, {failed} failed, {new} new"
        )
        sys.stderr.flush()
        self.drawn = True

    def clear(self) -> None:
        if self.drawn:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.drawn = False


def _say_interrupted(done: list[Any], sources: list[Any], args: argparse.Namespace) -> None:
    """What a stopped pass stored: a desk that pressed Ctrl-C must not have to guess."""
    new, updated = sum(r.new for r in done), sum(r.updated for r in done)
    stopped = len(sources) - len(done)
    line = (
        f"interrupted: {len(done)} of {_count(len(sources), 'source')} done, "
        f"{new} new and {updated} updated posts stored; {stopped} stopped mid-fetch "
        "(the next pass matches what was stored and fetches the rest)"
    )
    if args.json:
        _print_json({"ok": False, "interrupted": True, "done": [r.source_id for r in done],
                     "new": new, "updated": updated, "stopped": stopped})  # fmt: skip
    print(f"monitor: {line}", file=sys.stderr)


_Posts = dict[str, tuple[str | None, str | None, str | None]]
_Snippets = dict[tuple[str, str], str]


def _matched_posts(outcome: Any, store_path: str, every: bool) -> tuple[_Posts, _Snippets]:
    """The title, URL and time (published, else first seen) of each post the pass matched,
    and the snippets of the matches to show (`every` one, or those of the summary) that were
    not made when they matched."""
    from monitor.archive import open_archive
    from monitor.match import stored_snippets

    ids = list(dict.fromkeys(m.post_id for r in outcome.sources for m in r.matches))
    posts: _Posts = {}
    if not ids:
        return posts, {}
    store = open_archive(store_path, create=False)
    try:
        # A few hundred at a time: a busy pass may have matched thousands of posts.
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            rows = store.db.execute(
                "SELECT id, title, url, coalesce(published_at, first_seen_at) FROM posts "
                f"WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            posts.update((pid, (title, url, when)) for pid, title, url, when in rows)
        shown = [
            m
            for r in outcome.sources
            for m in (r.matches if every else [g[0] for g in _shown_groups(r.matches, posts)])
            if m.snippet is None
        ]
        return posts, stored_snippets(store.db, shown)
    finally:
        store.close()


def _match_doc(m: Any, posts: _Posts, snippets: _Snippets) -> dict[str, Any]:
    """A match of `fetch --json`, with what `search --json` gives of its post."""
    from monitor.match import link_at

    title, url, _ = posts.get(m.post_id, (None, None, None))
    snippet = m.snippet if m.snippet is not None else snippets.get((m.alert_id, m.post_id), "")
    return {
        "alert": m.alert_id, "post": m.post_id, "title": title, "url": url,
        "link": link_at(url, m.offset) if url else None, "snippet": snippet, "offset": m.offset,
    }  # fmt: skip


# Past this many matches, a source's matches are summarised: a person reads 20, not 2,000.
MATCHES_IN_FULL = 20
NEWEST_SHOWN = 5


def _shown_groups(matches: list[Any], posts: _Posts) -> list[list[Any]]:
    """The matches a summary shows, by post: each alone, or past MATCHES_IN_FULL those of
    the newest few posts (the first of a group is shown with its snippet)."""
    if len(matches) <= MATCHES_IN_FULL:
        return [[m] for m in matches]
    by_post: dict[str, list[Any]] = {}
    for m in matches:
        by_post.setdefault(m.post_id, []).append(m)
    newest = sorted(
        by_post, key=lambda pid: posts.get(pid, (None, None, None))[2] or "", reverse=True
    )
    return [by_post[pid] for pid in newest[:NEWEST_SHOWN]]


def _print_fetch_summary(outcome: Any, posts: _Posts, snippets: _Snippets, config: Config) -> None:
    from monitor.match import link_at

    width = max((len(r.source_id) for r in outcome.sources), default=6)
    pad = f"{'':<{width}}  "
    for r in outcome.sources:
        if not r.ok:
            status = f"FAILED  {r.error}"
        elif r.not_modified:
            status = "not modified"
        else:
            status = f"{r.new} new, {r.updated} updated"
        print(f"{r.source_id:<{width}}  {status}")
        for notice in r.notices:
            print(f"{pad}note: {notice}")
        groups = _shown_groups(r.matches, posts)
        if len(r.matches) > MATCHES_IN_FULL:
            _print_match_counts(r.matches, len(groups), config, pad)
        for post_matches in groups:
            m = post_matches[0]
            title, url, _ = posts.get(m.post_id, (None, None, None))
            title = title or url or m.post_id
            at = f" @ {int(m.offset)}s" if m.offset is not None else ""
            alerts = ", ".join(x.alert_id for x in post_matches[:3])
            if len(post_matches) > 3:
                alerts += f" +{len(post_matches) - 3}"
            print(f"{pad}↳ [{alerts}] {title}{at}")
            snippet = m.snippet if m.snippet is not None else snippets.get((m.alert_id, m.post_id))
            print(f"{pad}    {snippet or ''}")
            if url:
                print(f"{pad}    {link_at(url, m.offset)}")
        if len(r.matches) > MATCHES_IN_FULL:
            print(
                f"{pad}the rest: `monitor search QUERY --source {r.source_id}` with an alert's "
                "query, or `monitor fetch --json` for every match"
            )
    if outcome.health:
        from monitor.notifiers.message import event_title

        for event in outcome.health:
            print(f"source alert [{event.alert_id}] {event_title(event.payload)}")
    total = sum(len(r.matches) for r in outcome.sources)
    failed = sum(not r.ok for r in outcome.sources)
    line = (
        f"{_count(len(outcome.sources), 'source')}, {failed} failed, "
        f"{_count(total, 'new match', 'new matches')}"
    )
    o = outcome.outbox
    if o is not None and (o.sent or o.retrying or o.failed):  # nothing to say of no deliveries
        line += f"; deliveries: {o.sent} sent, {o.retrying} to retry, {o.failed} failed"
    print(line)
    if outcome.match_error:
        print(f"  {outcome.match_error}; the posts are kept, and matched by the next pass")
    if outcome.outbox is not None:
        for err in outcome.outbox.errors:
            print(f"  delivery error: {err}")


def _print_match_counts(matches: list[Any], shown: int, config: Config, pad: str) -> None:
    """A summarised source's matches: the count per alert, and how many posts follow."""
    from collections import Counter

    counts = Counter(m.alert_id for m in matches)
    print(f"{pad}{_count(len(matches), 'new match', 'new matches')}, by alert:")
    for alert_id, n in counts.most_common():
        alert = config.alerts.get(alert_id)
        query = f"  {alert.query}" if alert is not None else ""
        print(f"{pad}  {n:>6}  {alert_id}{query}")
    posts = len({m.post_id for m in matches})
    print(f"{pad}the newest {shown} of {_count(posts, 'post')}:")


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.schedule import ROLES, run_daemon

    roles = tuple(r for r in ROLES if r in args.only.split(","))
    unknown = [r for r in args.only.split(",") if r not in ROLES]
    if unknown or not roles:
        raise UsageError(
            f"--only: {', '.join(unknown) or 'nothing'} is not a role (roles are "
            f"{', '.join(ROLES)})"
        )
    config = _load(args)  # a fetcher needs the notifiers too: its matches make the deliveries
    if not args.quiet:
        # The daemon's log is its output: one line per fetch and per delivery round.
        logging.getLogger("monitor").setLevel(min(logging.INFO, logging.getLogger().level))
    return run_daemon(config, roles)


def cmd_search(args: argparse.Namespace) -> int:
    from monitor.archive import open_archive
    from monitor.archive.search import search, search_counted
    from monitor.query import QueryError

    config = _load(args, need_notifiers=False)
    query = " ".join(args.query)
    since = _since(args.since) if args.since else None
    store = open_archive(config.database, create=False)
    known = args.source is None or args.source in config.sources
    if not known and not store.has_source(args.source):
        store.close()
        from monitor.config import did_you_mean

        raise UsageError(
            f"--source: no source {args.source!r} in the configuration or the archive"
            + did_you_mean(args.source, list(config.sources))
        )
    try:
        if args.json or args.quiet:
            hits = search(store, query, source=args.source, since=since, limit=args.limit)
            total = len(hits)
        else:
            # There may be more than were shown: counted for the line that says so.
            hits, total = search_counted(
                store, query, source=args.source, since=since, limit=args.limit
            )
    except QueryError as e:
        print(f"monitor: bad query: {e}", file=sys.stderr)
        print(f"  {query}\n  {' ' * e.position}^", file=sys.stderr)
        if args.json:
            _print_json({"ok": False, "error": f"bad query: {e}", "position": e.position})
        return EXIT_USAGE
    finally:
        store.close()
    if args.json:
        _print_json(
            [{**h.post, "snippet": h.snippet, "offset": h.offset, "link": h.link} for h in hits]
        )
        return EXIT_OK
    for h in hits:
        p = h.post
        # Times are UTC, and a post whose source gave no date shows when it was first seen:
        # both said, so a desk in Paris or Ankara does not read them as its own clock.
        when = _utc_minute(p.get("published_at")) or (
            f"seen {_utc_minute(p.get('first_seen_at'))}" if p.get("first_seen_at") else ""
        )
        print(f"{when}  {p['source_id']}  {p.get('title') or '(no title)'}")
        print(f"    {h.snippet}")
        print(f"    {h.link}")
    if not args.quiet:
        shown = _count(total, "result")
        if total > len(hits):
            shown = f"{len(hits)} of {shown} (--limit {args.limit}; --json or a larger --limit)"
        print(shown)
    return EXIT_OK


def _since(text: str) -> str:
    """--since as ISO UTC: a date or time as written, or a duration back from now (`2d`)."""
    from monitor.config_types import parse_duration
    from monitor.text import parse_date

    when = parse_date(text)
    if when is None:
        try:
            ago = parse_duration(text)
        except ValueError:
            raise UsageError(
                f"--since: cannot read {text!r} as a date or a duration "
                "(use YYYY-MM-DD, an ISO time, or 2d, 6h, 30m)"
            ) from None
        from monitor.archive.sqlite import now_iso

        when = now_iso(time.time() - ago)
    return when


def _utc_minute(iso: str | None) -> str:
    """`2018-02-12T07:00:00Z` as `2018-02-12 07:00 UTC`; empty for no time."""
    return f"{iso[:16].replace('T', ' ')} UTC" if iso else ""


def cmd_sources(args: argparse.Namespace) -> int:
    from monitor.archive import archive_exists, describe, open_archive
    from monitor.archive.sqlite import now_iso
    from monitor.config_types import format_duration
    from monitor.schedule import next_due_at

    config = _load(args, need_notifiers=False)
    if args.opml:
        from monitor.opml_cli import print_sources_opml

        return print_sources_opml(config)  # type: ignore[no-any-return]
    rows = {}
    if archive_exists(config.database):  # else nothing was fetched yet: no need to make it
        store = open_archive(config.database)
        rows = {r["id"]: r for r in store.source_rows()}
        store.close()
    elif args.db:  # an archive asked for by name that is not there is a mistake, as in search
        open_archive(config.database, create=False)
    elif not args.json:
        print(f"(no archive at {describe(config.database)} yet: nothing fetched)", file=sys.stderr)
    out = []
    for sid, s in config.sources.items():
        r = rows.get(sid)
        every = s.every or config.monitor.every
        out.append(
            {
                "id": sid,
                "type": s.type,
                "target": config.redact(s.describe()),
                "every": format_duration(every),
                "enabled": s.enabled,
                "last_fetched_at": r["last_fetched_at"] if r else None,
                "fetched_by": r["fetched_by"] if r else None,
                "last_ok_at": r["last_ok_at"] if r else None,
                "last_new_at": r["last_new_at"] if r else None,
                "last_error": r["last_error"] if r else None,
                "failures": r["failures"] if r else 0,
                "posts": r["posts"] if r else 0,
                "notices": json.loads(r["notices"]) if r and r["notices"] else [],
                "name": s.name,
                "tags": s.tags,
                "next_due": next_due_at(r, every) if s.enabled else None,
            }
        )
    if args.json:
        _print_json(out)
        return EXIT_OK
    now = now_iso()
    for o in out:
        state = "disabled" if not o["enabled"] else (
            f"FAILING ×{o['failures']}" if o["failures"] else
            "interrupted" if o["last_error"] == "interrupted" else
            ("ok" if o["last_ok_at"] else "never fetched")
        )  # fmt: skip
        print(
            f"{o['id']}  [{o['type']}, every {o['every']}]  {state}  {_count(o['posts'], 'post')}"
        )
        print(f"    {o['target']}")
        if o["name"] or o["tags"]:
            print(f"    {o['name'] or ''}{'  ' if o['name'] and o['tags'] else ''}"
                  f"{' '.join(f'#{t}' for t in o['tags'])}")  # fmt: skip
        print(f"    last ok: {o['last_ok_at'] or '-'}   last new post: {o['last_new_at'] or '-'}"
              f"   next due: "
              f"{'now' if o['next_due'] and o['next_due'] <= now else (o['next_due'] or '-')}")  # fmt: skip
        if o["fetched_by"]:
            print(f"    last fetched by: {o['fetched_by']}")
        if o["last_error"]:
            print(f"    last error: {o['last_error']}")
        for notice in o["notices"]:
            print(f"    note: {notice}")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from monitor.opml_cli import run_import

    return run_import(_config_path(args), args.file, dry_run=args.dry_run, as_json=args.json)


def cmd_alerts(args: argparse.Namespace) -> int:
    from monitor.archive import open_archive

    config = _load(args, need_notifiers=args.retry)
    store = open_archive(config.database, create=False)
    code = EXIT_OK
    try:
        if args.retry:
            from monitor.outbox import deliver_due
            from monitor.runner import make_http

            async def go() -> Any:
                async with make_http(config) as http:
                    return await deliver_due(store, config, http, force=True)

            o = _run(go())
            # A retry that sent nothing it tried is a failure, to a script as to a person.
            code = EXIT_FAILED if o.retrying or o.failed else EXIT_OK
            if not args.json:
                print(f"deliveries: {o.sent} sent, {o.retrying} to retry, {o.failed} failed")
                for err in o.errors:
                    print(f"  error: {err}")
            if o.archive_error:
                print(f"monitor: {o.archive_error}", file=sys.stderr)
                if args.json:
                    _print_json({"ok": False, "error": o.archive_error})
                return EXIT_FAILED
        sql = (
            "SELECT d.id, d.alert_id, d.post_id, d.notifier, d.status, d.attempts, d.last_error,"
            " d.created_at, d.sent_at, d.next_attempt_at, p.title, p.url, d.event,"
            " e.source_id AS source FROM deliveries d"
            " LEFT JOIN source_episodes e ON e.id = d.episode_id"
            " LEFT JOIN posts p ON p.id = d.post_id"
        )
        params: list[Any] = []
        if args.status:
            sql += " WHERE d.status = ?"
            params.append(args.status)
        # Newest first; within a pass, each post's deliveries together, in a stable order.
        sql += " ORDER BY d.created_at DESC, d.post_id, d.alert_id, d.notifier LIMIT ?"
        params.append(args.limit)
        rows = [dict(r) for r in store.db.execute(sql, params)]
    finally:
        store.close()
    if args.json:
        _print_json(rows)
        return code
    if not rows:
        print("no deliveries" + (f" with status {args.status}" if args.status else ""))
    for r in rows:
        extra = f"  sent {r['sent_at']}" if r["sent_at"] else (
            f"  next try {r['next_attempt_at']}" if r["status"] == "pending" else ""
        )  # fmt: skip
        print(
            f"{r['status']:<7}  {r['alert_id']} → {r['notifier']}  attempts {r['attempts']}{extra}"
        )
        what = f"{r['source']}: {r['event']}" if r["event"] else None
        print(f"    {what or r['title'] or r['url'] or r['post_id']}")
        if r["last_error"]:
            print(f"    last error: {r['last_error']}")
    return code


def cmd_check(args: argparse.Namespace) -> int:
    from monitor.config import ConfigError, load_config

    path = _existing_config_path(args)
    try:
        config = load_config(path)
    except ConfigError as e:
        if args.json:
            _print_json({"ok": False, "config": str(path), "problems": e.problems})
        else:
            print(f"{path}: {len(e.problems)} problem{'s' if len(e.problems) != 1 else ''}")
            for problem in e.problems:
                print(f"  {problem}")
        return EXIT_USAGE
    from monitor.archive import describe

    database = args.db or config.database
    archive, problem = _check_archive(database, "--db" if args.db else "monitor.database")
    summary = {
        "ok": problem is None,
        "config": str(path),
        "sources": len(config.sources),
        "alerts": len(config.alerts),
        "notifiers": len(config.notifiers),
        "database": describe(database),
        "archive": archive,
    }
    if problem is not None:
        summary["problems"] = [problem]
    if args.json:
        _print_json(summary)
    elif problem is not None:
        print(f"{path}: 1 problem\n  {problem}")
    else:
        print(
            f"{path}: ok — {_count(summary['sources'], 'source')}, "
            f"{_count(summary['alerts'], 'alert')}, {_count(summary['notifiers'], 'notifier')}; "
            f"database {describe(database)} ({archive})"
        )
    return EXIT_OK if problem is None else EXIT_USAGE


def _check_archive(path: str, key: str) -> tuple[str, str | None]:
    """What is at the archive's path, and the problem with it if it can't be used."""
    import os
    import sqlite3

    from monitor.archive.sqlite import SCHEMA_VERSION

    if path == ":memory:":
        return "in memory", None
    from monitor.archive import is_url

    if is_url(path):
        from monitor.archive.postgres import check

        return check(path, key)
    where = Path(path).resolve().parent
    if not Path(path).exists():
        if where.is_dir() and not os.access(where, os.W_OK | os.X_OK):
            return "not made yet", f"{key}: cannot make {path}: {where} is not writable here"
        if key == "--db" and not where.is_dir():
            return "not made yet", f"{key}: there is no directory {where}"
        return "not made yet: the first fetch makes it", None
    try:
        db = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
        try:
            (version,) = db.execute("PRAGMA user_version").fetchone()
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            db.close()
    except sqlite3.Error as e:
        return "unreadable", f"{key}: {path} cannot be read as an archive: {e}"
    if version > SCHEMA_VERSION:
        return f"schema {version}", (
            f"{key}: {path} was made by a newer monitor (schema {version}; this one "
            f"knows {SCHEMA_VERSION}): upgrade the monitor"
        )
    if not os.access(path, os.W_OK):
        return f"schema {version}", f"{key}: {path} is not writable here"
    return f"schema {version}", None


def cmd_health(args: argparse.Namespace) -> int:
    from monitor import health
    from monitor.archive import describe, open_archive
    from monitor.config_types import parse_duration

    limits = []
    for option, value in (("--max-silence", args.max_silence), ("--max-backlog", args.max_backlog)):
        try:
            limits.append(parse_duration(value))
        except ValueError as e:
            raise UsageError(f"{option}: {e}") from None
    if not 0 < args.max_failing <= 1:
        raise UsageError(f"--max-failing: a share from 0 to 1, got {args.max_failing}")
    config = _load(args, need_notifiers=False)
    store = open_archive(config.database, create=False)
    try:
        enabled = [s.id for s in config.sources.values() if s.enabled]
        state = health.check(store.db, enabled, health.Limits(limits[0], args.max_failing,
                                                               limits[1]))  # fmt: skip
    except store.errors as e:
        raise ArchiveError(f"cannot read the archive {describe(config.database)}: {e}") from None
    finally:
        store.close()
    if args.json:
        _print_json({"ok": state.ok, "problems": state.problems, "daemon": state.daemon,
                     "sources": state.sources, "failing": state.failing,
                     "pending": state.pending, "oldest_pending_at": state.oldest_pending_at})  # fmt: skip
    elif state.ok:
        beat = state.daemon["beat_at"] if state.daemon else "-"
        print(f"ok — daemon alive (last heartbeat {beat}), {len(state.failing)} of "
              f"{_count(state.sources, 'source')} failing, "
              f"{_count(state.pending, 'delivery', 'deliveries')} pending")  # fmt: skip
    else:
        for problem in state.problems:
            print(f"unhealthy: {problem}")
    return EXIT_OK if state.ok else EXIT_FAILED


def cmd_workers(args: argparse.Namespace) -> int:
    from monitor import health
    from monitor.archive import open_archive

    config = _load(args, need_notifiers=False)
    store = open_archive(config.database, create=False)
    try:
        rows = health.workers(store.db)
    finally:
        store.close()
    if not args.all:
        rows = [w for w in rows if w["state"] == "live"]
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        print("no live daemon on this archive" + ("" if args.all else " (--all shows the others)"))
    for w in rows:
        print(f"{w['state']:<8} {w['id']}  roles {w['roles']}  last heartbeat {w['beat_at']}"
              f"  started {w['started_at']}"
              + (f"  stopped {w['stopped_at']}" if w["stopped_at"] else ""))  # fmt: skip
    return EXIT_OK


def cmd_record(args: argparse.Namespace) -> int:
    from monitor.pipeline import describe_error
    from monitor.recording import Recorder
    from monitor.runner import make_http
    from monitor.sources.base import FetchContext

    config = _load(args)
    source = config.sources.get(args.source_id)
    if source is None:
        from monitor.config import did_you_mean

        raise UsageError(
            f"no source {args.source_id!r} in the configuration"
            + did_you_mean(args.source_id, list(config.sources))
        )
    recorder = Recorder(args.directory)
    from monitor import ytdlp

    extractions = ytdlp.record_to(args.directory)

    async def go() -> Any:
        async with make_http(config, observe=recorder) as http:
            # A fresh state: a recording must hold full answers, not 304s to our validators.
            ctx = FetchContext(
                http=http, state={}, timeout=source.timeout or config.monitor.timeout
            )
            return await source.collect(ctx)

    try:
        collected = _run(go())
    except Exception as e:  # noqa: BLE001
        for path in [*recorder.saved, *extractions]:
            print(f"saved {path}")
        print(f"monitor: {args.source_id}: {config.redact(describe_error(e))}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        ytdlp.record_to(None)
    for path in [*recorder.saved, *extractions]:
        print(f"saved {path}")
    print(
        f"{args.source_id}: {_count(len(collected.posts), 'post')} in "
        f"{_count(len(recorder.saved), 'exchange')}"
        + (f" and {len(extractions)} yt-dlp extractions" if extractions else "")
    )
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    from monitor.archive import describe, is_url, open_archive

    config = _load(args, need_notifiers=False)
    if not is_url(args.to):
        raise UsageError(f"--to: {args.to!r} is not a postgresql:// URL")
    if is_url(config.database):
        raise UsageError(
            f"the archive to copy is {describe(config.database)}, not a SQLite file "
            "(name it with --db)"
        )
    from monitor.archive.migrate import migrate

    source = open_archive(config.database, create=False)
    try:
        target = open_archive(args.to)
        try:
            done = migrate(source, target)  # type: ignore[arg-type]
        finally:
            target.close()
    finally:
        source.close()
    if args.json:
        _print_json({"ok": True, "from": config.database, "to": describe(args.to),
                     "copied": done.copied, "pending": done.pending, "search_mark": done.mark})  # fmt: skip
        return EXIT_OK
    copied = ", ".join(f"{n} {table}" for table, n in done.copied.items())
    print(f"copied {config.database} into {describe(args.to)}: {copied}")
    if done.pending:
        print(
            f"{_count(done.pending, 'delivery', 'deliveries')} pending: the next pass on PostgreSQL sends "
            "them, under the ids they were made with"
        )
    return EXIT_OK


COMMANDS = {
    "fetch": cmd_fetch,
    "run": cmd_run,
    "search": cmd_search,
    "sources": cmd_sources,
    "import": cmd_import,
    "alerts": cmd_alerts,
    "check": cmd_check,
    "health": cmd_health,
    "workers": cmd_workers,
    "record": cmd_record,
    "migrate": cmd_migrate,
}
