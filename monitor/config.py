"""TOML → frozen dataclasses: ${ENV} substituted, durations read, every error names its key."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from monitor.config_types import DURATION, SIZE, Duration, Size, parse_duration, parse_size

if typing.TYPE_CHECKING:
    from monitor.notifiers.base import NotifierConfig
    from monitor.query import Query
    from monitor.sources.base import SourceConfig

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """Every problem found in a configuration, each as `key: what is wrong`."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, kw_only=True)
class MonitorSettings:
    database: str = "monitor.db"
    every: Duration = 900.0
    timeout: Duration = 20.0
    user_agent: str = "outlet-monitor/0.1 (+https://github.com/outlet-monitor/outlet-monitor)"
    max_body: Size = 10_000_000
    per_host: int = 2
    concurrency: int = 32  # requests in flight across all hosts
    allow_private: bool = False
    jitter: Duration = 30.0  # a run within half this (and a twentieth of `every`) of its slot
    metrics: str | None = None  # host:port where the daemon serves Prometheus metrics

    def validate(self) -> list[str]:
        # A limit of 0 requests in flight is not "unlimited": every request waits for a slot
        # that never frees, and every fetch times out.
        problems = [
            f"{key}: must be at least 1, got {value}"
            for key, value in (("per_host", self.per_host), ("concurrency", self.concurrency))
            if value < 1
        ]
        if self.metrics is not None:
            host, _, port = self.metrics.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                problems.append(
                    f"metrics: expected host:port such as 127.0.0.1:9108, got {self.metrics!r}"
                )
        scheme = self.database.split("://", 1)[0] if "://" in self.database else None
        if scheme is not None and scheme not in ("postgresql", "postgres"):
            problems.append(
                f"database: {scheme}:// is not an archive the monitor knows "
                "(a file path for SQLite, or a postgresql:// URL)"
            )
        return problems


@dataclass(frozen=True, kw_only=True)
class AlertConfig:
    id: str
    query: str | None = None  # an alert on posts; or, with the two below, on sources' health
    sources: list[str] = field(default_factory=lambda: ["*"])
    notify: list[str] = field(default_factory=list)
    max_per_hour: int | None = None
    # Matches on posts published longer ago than this are recorded but not sent: a source's
    # first fetch brings its backlog, and last month's stories are not news to the desk.
    max_age: Duration | None = None
    # A source-health alert: fires once when a source has failed, or found no new post, for
    # this long, and once more when it recovers (monitor/source_health.py).
    failing_for: Duration | None = None
    silent_for: Duration | None = None

    @property
    def watches_sources(self) -> bool:
        return self.failing_for is not None or self.silent_for is not None

    def applies_to(self, source_id: str) -> bool:
        return any(fnmatchcase(source_id, pattern) for pattern in self.sources)


@dataclass(frozen=True)
class Config:
    monitor: MonitorSettings
    sources: dict[str, SourceConfig]
    alerts: dict[str, AlertConfig]
    notifiers: dict[str, NotifierConfig]
    queries: dict[str, Query]  # alert id → parsed query
    path: Path | None = None
    secrets: frozenset[str] = frozenset()  # values that came from ${VAR}: never printed

    @property
    def database(self) -> str:
        return self.monitor.database

    def redact(self, text: str) -> str:
        """`text` with every value that came from the environment replaced by `***`."""
        return _redact(text, self.secrets)


def default_config_path() -> Path:
    env = os.environ.get("MONITOR_CONFIG")
    if env:
        return Path(env)
    for candidate in (Path("monitor.toml"), Path("config/monitor.toml")):
        if candidate.exists():
            return candidate
    return Path("monitor.toml")


def load_config(
    path: str | Path, env: Mapping[str, str] | None = None, *, need_notifiers: bool = True
) -> Config:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such configuration file"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"{path}: cannot read: {e}"]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{path}: not valid TOML: {e}"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: {_TOO_DEEP}"]) from None
    try:
        return parse_config(
            raw, env=os.environ if env is None else env, path=path, need_notifiers=need_notifiers
        )
    except RecursionError:  # valid TOML (a.a.a… = 1), but deeper than anything reads
        raise ConfigError([f"{path}: {_TOO_DEEP}"]) from None


# tomllib and the reading of tables recurse, a level of the Python stack per level of TOML.
_TOO_DEEP = "tables, lists or dotted keys nested too deeply to read (hundreds of levels)"


def parse_config(
    raw: dict[str, Any],
    env: Mapping[str, str] | None = None,
    path: Path | None = None,
    *,
    need_notifiers: bool = True,
) -> Config:
    """The configuration in `raw`, or ConfigError with every problem.

    Without `need_notifiers` (a command that sends nothing: `search`, `sources`, `alerts`), a
    notifier whose ${VAR} is not set is left out of `notifiers` instead of refusing the whole
    file: the password of the mail server is the sender's business, not the reader's.
    """
    from monitor.notifiers import TYPES as NOTIFIER_TYPES
    from monitor.notifiers import notifier_class
    from monitor.sources import TYPES as SOURCE_TYPES
    from monitor.sources import source_class

    problems: list[str] = []
    secrets: set[str] = set()
    raw = _substitute(raw, "", env if env is not None else os.environ, problems, secrets)
    unsendable: set[str] = set()
    if not need_notifiers:
        tables = raw.get("notifiers")
        for nid in tables if isinstance(tables, dict) else ():
            mine = [p for p in problems if p.startswith(f"notifiers.{nid}.") and _UNSET in p]
            if mine:
                unsendable.add(nid)
                problems[:] = [p for p in problems if p not in mine]
    for key in raw:
        if key not in ("monitor", "sources", "alerts", "notifiers"):
            problems.append(
                f"{key}: unknown table{did_you_mean(key, ['monitor', 'sources', 'alerts', 'notifiers'])}"
            )

    monitor = build(MonitorSettings, _table(raw, "monitor", problems), "monitor", problems)
    if monitor is None:
        monitor = MonitorSettings()

    # Every table, built or not: one whose own problems kept it from being built is still
    # there, and an alert naming it must not be told it is missing on top of those problems.
    source_tables = _tables(raw, "sources", problems)
    notifier_tables = _tables(raw, "notifiers", problems)
    sources: dict[str, Any] = {}
    for sid, table in source_tables.items():
        key = f"sources.{sid}"
        type_name = table.get("type")
        if type_name is None:
            problems.append(
                f"{key}.type: missing (one of {', '.join(sorted(SOURCE_TYPES))})"
                + _misspelt_type(table)
            )
            continue
        if type_name not in SOURCE_TYPES:
            problems.append(
                f"{key}.type: unknown source type {type_name!r}"
                f"{did_you_mean(str(type_name), list(SOURCE_TYPES))} (one of {', '.join(sorted(SOURCE_TYPES))})"
            )
            continue
        obj = build(source_class(type_name), table, key, problems, extra={"id": sid})
        if obj is not None:
            sources[sid] = obj

    notifiers: dict[str, Any] = {}
    for nid, table in notifier_tables.items():
        key = f"notifiers.{nid}"
        type_name = table.get("type")
        if type_name not in NOTIFIER_TYPES:
            what = "missing" if type_name is None else f"unknown notifier type {type_name!r}"
            problems.append(
                f"{key}.type: {what} (one of {', '.join(sorted(NOTIFIER_TYPES))})"
                + (_misspelt_type(table) if type_name is None else "")
            )
            continue
        if nid in unsendable:  # checked where it is needed: by a command that sends
            continue
        obj = build(notifier_class(type_name), table, key, problems, extra={"id": nid})
        if obj is not None:
            notifiers[nid] = obj
            if need_notifiers:
                # What only the notifier's own library can tell (an Apprise URL it cannot
                # use): a command that never sends need not import it.
                problems += [f"{key}.{problem}" for problem in obj.check()]

    alerts: dict[str, AlertConfig] = {}
    queries: dict[str, Any] = {}
    for aid, table in _tables(raw, "alerts", problems).items():
        key = f"alerts.{aid}"
        alert = build(AlertConfig, table, key, problems, extra={"id": aid})
        if alert is None:
            continue
        from monitor.query import QueryError, parse_query

        if alert.query is not None and alert.watches_sources:
            problems.append(
                f"{key}: an alert watches posts (query) or sources (failing_for, silent_for),"
                " not both: make it two alerts"
            )
        elif alert.watches_sources:
            problems += [
                f"{key}.{k}: applies to alerts on posts (query) only"
                for k in ("max_per_hour", "max_age")
                if k in table
            ]
        elif alert.query is None and "query" not in table:
            problems.append(
                f"{key}.query: missing (required; or failing_for / silent_for, for an alert"
                " on the sources themselves)"
            )
        if alert.query is not None:
            try:
                queries[aid] = parse_query(alert.query)
            except QueryError as e:
                problems.append(f"{key}.query: {e}")
                continue
        for pattern in alert.sources:
            if not any(fnmatchcase(s, pattern) for s in source_tables) and source_tables:
                problems.append(f"{key}.sources: {pattern!r} matches no source")
        for nid in alert.notify:
            if nid not in notifier_tables:
                problems.append(
                    f"{key}.notify: no notifier {nid!r}{did_you_mean(nid, list(notifiers))}"
                    + (f" (add a [notifiers.{nid}] table)" if _ID.match(nid) else "")
                )
        if alert.max_per_hour is not None and alert.max_per_hour < 1:
            problems.append(f"{key}.max_per_hour: must be at least 1")
        alerts[aid] = alert

    hidden = frozenset(s for s in secrets if len(s) >= 4)  # shorter ones are in every text
    if problems:
        # A problem quotes the value it found, which may have come from ${VAR}.
        raise ConfigError([_redact(p, hidden) for p in problems])
    return Config(
        monitor=monitor,
        sources=sources,
        alerts=alerts,
        notifiers=notifiers,
        queries=queries,
        path=path,
        secrets=hidden,
    )


def _table(raw: dict[str, Any], name: str, problems: list[str]) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        problems.append(f"{name}: must be a table ([{name}])")
        return {}
    return value


def _tables(raw: dict[str, Any], name: str, problems: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for ident, table in _table(raw, name, problems).items():
        if not isinstance(table, dict):
            problems.append(f"{name}.{ident}: must be a table ([{name}.{ident}])")
        elif not _ID.match(ident):
            problems.append(
                f"{name}.{ident}: ids may use letters, digits, '-', '_' and '.' (at most 64)"
            )
        else:
            out[ident] = table
    return out


_UNSET = " is not set"


class _FromEnv(str):
    """A setting that is one whole ${VAR}: the environment only holds strings, so a number
    or true/false is read from the text (`port = "${SMTP_PORT}"`)."""

    __slots__ = ()


def _substitute(
    value: Any, key: str, env: Mapping[str, str], problems: list[str], secrets: set[str]
) -> Any:
    if isinstance(value, str):
        whole = _ENV.fullmatch(value)
        if whole and whole.group(1) in env:
            secrets.add(env[whole.group(1)])
            return _FromEnv(env[whole.group(1)])

        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in env:
                problems.append(f"{key}: environment variable {name}{_UNSET}")
                return ""
            secrets.add(env[name])
            return env[name]

        return _ENV.sub(repl, value)
    if isinstance(value, dict):
        return {
            k: _substitute(v, f"{key}.{k}" if key else k, env, problems, secrets)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_substitute(v, f"{key}[{i}]", env, problems, secrets) for i, v in enumerate(value)]
    return value


def _misspelt_type(table: dict[str, Any]) -> str:
    """`; 'typ' is not a key (did you mean 'type'?)` when a key of the table is close to it."""
    close = difflib.get_close_matches("type", [str(k) for k in table], n=1)
    return f"; {close[0]!r} is not a key (did you mean 'type'?)" if close else ""


def did_you_mean(word: str, choices: list[str]) -> str:
    """` (did you mean 'x'?)` for the closest of `choices`, or nothing."""
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def build(
    cls: type,
    table: dict[str, Any],
    prefix: str,
    problems: list[str],
    extra: dict[str, Any] | None = None,
) -> Any:
    """An instance of the config dataclass `cls` from a TOML table, or None with `problems` added.

    The dataclass's fields are the table's keys; their annotations say how each is read.
    """
    hints, fields = _schema(cls)
    extra = extra or {}
    kwargs: dict[str, Any] = {}
    before = len(problems)
    # Keys already reported (a ${VAR} that is not set): their value, now "", would only add a
    # second, misleading problem ("expected a whole number, got the string ''").
    reported = {_key_of(p[len(prefix) + 1 :]) for p in problems if p.startswith(f"{prefix}.")}
    for key in table:
        if key not in fields or key in extra:
            allowed = [k for k in fields if k not in extra]
            problems.append(f"{prefix}.{key}: unknown key{did_you_mean(key, allowed)}")
    for key, f in fields.items():
        if key in extra:
            kwargs[f.name] = extra[key]
            continue
        if key in reported:
            continue
        if key not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(f"{prefix}.{key}: missing (required)")
            continue
        try:
            kwargs[f.name] = _convert(table[key], hints[f.name])
        except ValueError as e:
            problems.append(f"{prefix}.{key}: {e}")
            continue
        least = _AT_LEAST.get(key)
        if least is not None and kwargs[f.name] < least:
            problems.append(f"{prefix}.{key}: must be at least {least:g}s, got {table[key]!r}")
    # With problems already, the table is still built (its faulty keys at their defaults) and
    # checked, so that `monitor check` reports every mistake at once, and the tables that
    # refer to it are checked against it; the configuration is refused all the same.
    failed = reported | {p[len(prefix) + 1 :].split(":")[0] for p in problems[before:]}
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError):  # a required key is missing or wrong
        return None
    validate = getattr(obj, "validate", None)
    if validate is not None:
        for problem in validate():
            if _key_of(problem) not in failed:
                problems.append(f"{prefix}.{problem}")
    return obj


def _key_of(problem: str) -> str:
    """The table key a problem is about: `to` of `to[0]: ...`, `headers` of `headers.X: ...`."""
    return re.split(r"[.:\[ ]", problem, maxsplit=1)[0]


# Durations that make no sense below a second: a fetch every 0s polls an outlet in a loop,
# and a 0s timeout fails every fetch.
_AT_LEAST = {"every": 1.0, "timeout": 1.0, "max_age": 1.0, "failing_for": 1.0, "silent_for": 1.0}


def _redact(text: str, secrets: frozenset[str]) -> str:
    if not secrets:
        return text
    return _secrets_pattern(secrets).sub("***", text)


# How a character of a secret may be written once a client has rewritten the text it is in:
# as is, percent-encoded (any case, any byte of its UTF-8), `+` for a space (forms),
# JSON's \uXXXX and \" \\ \/, or an HTML entity.
_ESCAPES = {'"': ('\\"', "&quot;", "&#34;"), "\\": ("\\\\",), "/": ("\\/",), "&": ("&amp;",),
            "<": ("&lt;",), ">": ("&gt;",), "'": ("&#39;", "&#x27;"), " ": ("+",)}  # fmt: skip


@functools.cache
def _secrets_pattern(secrets: frozenset[str]) -> re.Pattern[str]:
    """Every way a secret may be written, longest secret first.

    httpx percent-encodes a URL before it logs it (`q=a b` becomes `q=a%20b`), so a secret
    with a space, a slash or a letter beyond ASCII in it no longer equals its masked string;
    a JSON or HTML answer quoted in an error escapes it differently again. Each character
    matches any of its encodings, whichever a client chose.
    """

    def char(c: str) -> str:
        encoded = [
            "".join(f"%{b:02x}" for b in c.encode("utf-8", "surrogatepass")),
            "".join(f"\\\\u{u:04x}" for u in _utf16(c)),
            *(re.escape(e) for e in _ESCAPES.get(c, ())),
        ]
        return f"{re.escape(c)}|(?i:{'|'.join(encoded)})"

    alternatives = ["".join(f"(?:{char(c)})" for c in secret)
                    for secret in sorted(secrets, key=len, reverse=True)]  # fmt: skip
    return re.compile("|".join(alternatives))


def _utf16(c: str) -> list[int]:
    """The UTF-16 code units of a character, as JSON's \\u escapes write it (a pair beyond U+FFFF)."""
    data = c.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


@functools.cache
def _schema(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field[Any]]]:
    """A config dataclass's annotations and fields by TOML key (read once per class)."""
    hints = get_type_hints(cls, include_extras=True)
    fields = {f.metadata.get("key", f.name): f for f in dataclasses.fields(cls) if f.init}
    return hints, fields


def _convert(value: Any, hint: Any) -> Any:
    origin = get_origin(hint)
    if origin is typing.Annotated:
        base, *meta = get_args(hint)
        if DURATION in meta:
            return parse_duration(value)
        if SIZE in meta:
            return parse_size(value)
        return _convert(value, base)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        errors = []
        for arg in args:
            try:
                return _convert(value, arg)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0] if len(errors) == 1 else " or ".join(errors))
    if origin is list:
        (item,) = get_args(hint) or (Any,)
        if isinstance(value, str) and item is str:
            return [str(value)]  # a lone string where a list is expected is the one-element list
        if not isinstance(value, list):
            raise ValueError(f"expected a list, got {_kind(value)}")
        return [_convert(v, item) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"expected a table, got {_kind(value)}")
        _, item = get_args(hint) or (str, Any)
        return {str(k): _convert(v, item) for k, v in value.items()}
    if hint is Any:
        return value
    if isinstance(value, _FromEnv) and hint in (bool, int, float):
        value = _from_env(value, hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {_kind(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number, got {_kind(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {_kind(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {_kind(value)}")
        return str(value)
    raise ValueError(f"unsupported setting type {hint!r}")


def _from_env(text: str, hint: type) -> Any:
    """`text` as the TOML value it spells, or `text` itself when it spells none."""
    text = text.strip()
    if hint is bool:
        return {"true": True, "false": False}.get(text.lower(), text)
    try:
        return int(text) if hint is int else float(text)
    except ValueError:
        return text


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__
