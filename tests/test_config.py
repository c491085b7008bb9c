"""Configuration: every mistake names its key and says what is wrong."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from monitor.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[1]


def problems(raw: dict, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(raw, env=env or {})
    return e.value.problems


FEED = {"type": "feed", "url": "https://www.nato.int/cps/rss/en/natohq/rssFeed.xsl/rssFeed.xml"}


def test_minimal_config_gets_the_documented_defaults():
    c = parse_config({"sources": {"nato": FEED}}, env={})
    assert c.monitor.database == "monitor.db"
    assert c.monitor.every == 900 and c.monitor.timeout == 20
    assert c.monitor.max_body == 10_000_000 and c.monitor.per_host == 2
    assert c.monitor.allow_private is False
    assert c.sources["nato"].enabled is True


def test_durations_and_sizes_are_read():
    c = parse_config(
        {"monitor": {"every": "2h", "timeout": "30s", "max_body": "512KB"},
         "sources": {"nato": {**FEED, "every": "1d"}}},
        env={},
    )  # fmt: skip
    assert (c.monitor.every, c.monitor.timeout, c.monitor.max_body) == (7200, 30, 512_000)
    assert c.sources["nato"].every == 86400


def test_a_duration_without_its_unit_is_refused_rather_than_guessed():
    p = problems({"monitor": {"every": 15}, "sources": {"nato": {**FEED, "timeout": "30"}}})
    assert p == [
        "monitor.every: a duration needs its unit: write 15s, 15m, 15h or 15d",
        "sources.nato.timeout: a duration needs its unit: write 30s, 30m, 30h or 30d",
    ]
    c = parse_config({"monitor": {"jitter": 0}, "sources": {"nato": FEED}}, env={})
    assert c.monitor.jitter == 0.0  # nothing is nothing in any unit


def test_a_schedule_or_timeout_under_a_second_is_refused():
    p = problems(
        {"monitor": {"every": "0s", "timeout": "500ms"},
         "sources": {"nato": {**FEED, "every": "1ms"}}}
    )  # fmt: skip
    assert p == [
        "monitor.every: must be at least 1s, got '0s'",
        "monitor.timeout: must be at least 1s, got '500ms'",
        "sources.nato.every: must be at least 1s, got '1ms'",
    ]


def test_environment_variables_are_substituted_and_remembered_as_secrets():
    c = parse_config(
        {"sources": {"nato": FEED},
         "notifiers": {"hook": {"type": "webhook", "url": "https://h.example.org/x",
                                "secret": "${WEBHOOK_SECRET}"}}},
        env={"WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
    )  # fmt: skip
    assert c.notifiers["hook"].secret == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" in c.secrets


def test_missing_environment_variable_names_the_key():
    p = problems({"monitor": {"user_agent": "desk (${CONTACT})"}, "sources": {"nato": FEED}})
    assert p == ["monitor.user_agent: environment variable CONTACT is not set"]


def test_unknown_key_is_reported_with_a_suggestion():
    p = problems({"sources": {"nato": {**FEED, "evry": "5m"}}})
    assert p == ["sources.nato.evry: unknown key (did you mean 'every'?)"]


def test_bad_duration_names_the_key():
    p = problems({"monitor": {"every": "soon"}, "sources": {"nato": FEED}})
    assert len(p) == 1 and p[0].startswith("monitor.every: expected a duration")


def test_wrong_type_names_the_key_and_the_value():
    p = problems({"monitor": {"per_host": "two"}, "sources": {"nato": FEED}})
    assert p == ["monitor.per_host: expected a whole number, got the string 'two'"]


def test_unknown_source_type_lists_the_known_ones():
    p = problems({"sources": {"x1": {"type": "fede", "url": "https://e.org"}}})
    assert p[0].startswith("sources.x1.type: unknown source type 'fede' (did you mean 'feed'?)")


def test_missing_required_key_is_reported():
    p = problems({"sources": {"nato": {"type": "feed"}}})
    assert p == ["sources.nato.url: missing (required)"]


def test_bad_query_is_a_configuration_error_with_its_position():
    p = problems({"sources": {"nato": FEED}, "alerts": {"a": {"query": "NATO (troops"}}})
    assert len(p) == 1 and p[0].startswith("alerts.a.query: ") and "column" in p[0]


def test_alert_naming_an_unknown_notifier_is_an_error():
    p = problems(
        {"sources": {"nato": FEED}, "alerts": {"a": {"query": "NATO", "notify": ["desk"]}}}
    )
    assert p[0].startswith("alerts.a.notify: no notifier 'desk'")


def test_alert_source_pattern_matching_nothing_is_an_error():
    p = problems(
        {"sources": {"nato": FEED}, "alerts": {"a": {"query": "NATO", "sources": ["kremlin-*"]}}}
    )
    assert p == ["alerts.a.sources: 'kremlin-*' matches no source"]


def test_alert_sources_accept_globs():
    c = parse_config(
        {"sources": {"kremlin-en": FEED, "kremlin-ru": FEED, "nato": FEED},
         "alerts": {"a": {"query": "NATO", "sources": ["kremlin-*"]}}},
        env={},
    )  # fmt: skip
    assert [s for s in c.sources if c.alerts["a"].applies_to(s)] == ["kremlin-en", "kremlin-ru"]


def test_all_problems_are_reported_at_once():
    p = problems(
        {"monitor": {"every": "x"}, "sources": {"a": {"type": "feed"}, "b": {"type": "nope"}}}
    )
    assert len(p) == 3


def test_a_wrong_type_does_not_hide_the_other_problems_of_its_table_or_of_those_using_it():
    mail = {"type": "email", "host": "smtp.example.org", "port": "25", "security": "ssl",
            "from": "monitor@example.org", "to": ["desk@example.org"]}  # fmt: skip
    p = problems(
        {
            "sources": {"nato": {**FEED, "every": "often"}},
            "notifiers": {"mail": mail},
            "alerts": {
                "a1": {"query": "NATO", "notify": ["mail", "nosuch"], "max_per_hour": 0,
                       "sources": ["nato", "tass*"], "quarry": "x", "max_age": "0s"},
                "a2": {"query": "NATO", "max_age": "2 days"},
            },
        }
    )  # fmt: skip
    assert sorted(p) == sorted([
        "sources.nato.every: expected a duration such as 30s, 5m, 2h or 1d, got 'often'",
        "notifiers.mail.port: expected a whole number, got the string '25'",
        "notifiers.mail.security: must be one of starttls, tls, none, got 'ssl'",
        "alerts.a1.quarry: unknown key (did you mean 'query'?)",
        "alerts.a1.sources: 'tass*' matches no source",
        "alerts.a1.notify: no notifier 'nosuch' (add a [notifiers.nosuch] table)",
        "alerts.a1.max_per_hour: must be at least 1",
        "alerts.a1.max_age: must be at least 1s, got '0s'",
        "alerts.a2.max_age: expected a duration such as 30s, 5m, 2h or 1d, got '2 days'",
    ])  # fmt: skip


def test_invalid_toml_is_reported_with_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[sources.x\ntype = 'feed'\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in e.value.problems[0] and "not valid TOML" in e.value.problems[0]


@pytest.mark.parametrize("name", ["monitor.toml", "demo.toml"])
def test_shipped_example_configs_are_valid(name):
    raw = tomllib.loads((ROOT / "config" / name).read_text())
    env = {"SMTP_PASSWORD": "x", "WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
           "X_BEARER_TOKEN": "t"}  # fmt: skip
    config = parse_config(raw, env=env)
    assert config.sources and config.alerts


def test_a_whole_setting_from_the_environment_can_be_a_number_or_true_false():
    c = parse_config(
        {"monitor": {"per_host": "${PER_HOST}"},
         "sources": {"nato": FEED},
         "notifiers": {"desk": {"type": "email", "host": "smtp.example.org",
                                "port": "${SMTP_PORT}", "from": "m@example.org",
                                "to": ["desk@example.org"]}}},
        env={"SMTP_PORT": "2525", "PER_HOST": " 3 "},
    )  # fmt: skip
    assert c.notifiers["desk"].port == 2525
    assert c.monitor.per_host == 3
    d = parse_config(
        {"monitor": {"allow_private": "${PRIVATE}"}, "sources": {"nato": {**FEED, "enabled": "${ON}"}}},
        env={"PRIVATE": "true", "ON": "False"},
    )  # fmt: skip
    assert d.monitor.allow_private is True and d.sources["nato"].enabled is False


def test_a_number_from_the_environment_that_is_not_one_names_the_key_not_the_value():
    p = problems(
        {"monitor": {"per_host": "${PER_HOST}", "concurrency": "1${N}"},
         "sources": {"nato": FEED}},
        env={"PER_HOST": "lots-of-them", "N": "0"},
    )  # fmt: skip
    assert p == [
        "monitor.per_host: expected a whole number, got the string '***'",
        "monitor.concurrency: expected a whole number, got the string '10'",
    ]


def test_a_request_limit_under_one_is_refused_rather_than_stalling_every_fetch():
    p = problems({"monitor": {"per_host": 0, "concurrency": -1}, "sources": {"nato": FEED}})
    assert p == [
        "monitor.per_host: must be at least 1, got 0",
        "monitor.concurrency: must be at least 1, got -1",
    ]


def test_a_missing_environment_variable_is_one_problem_not_a_cascade():
    p = problems(
        {"sources": {"nato": {**FEED, "url": "${FEED_URL}"}, "tass": FEED},
         "alerts": {"a": {"query": "nato", "sources": ["nato"], "notify": ["hook", "desk"]}},
         "notifiers": {
             "hook": {"type": "webhook", "url": "${HOOK_URL}", "secret": "${WEBHOOK_SECRET}"},
             "desk": {"type": "email", "host": "smtp.example.org", "port": "${SMTP_PORT}",
                      "from": "monitor@example.org", "to": ["desk@example.org"]}}},
    )  # fmt: skip
    assert p == [
        "sources.nato.url: environment variable FEED_URL is not set",
        "notifiers.hook.url: environment variable HOOK_URL is not set",
        "notifiers.hook.secret: environment variable WEBHOOK_SECRET is not set",
        "notifiers.desk.port: environment variable SMTP_PORT is not set",
    ]


def test_a_table_with_a_broken_required_key_is_not_also_reported_missing_by_its_alerts():
    p = problems(
        {"sources": {"nato": {**FEED, "url": 5}, "tass": FEED},
         "alerts": {"a": {"query": "nato", "sources": ["nato"], "notify": ["hook"]}},
         "notifiers": {"hook": {"type": "webhook", "url": 7}}},
    )  # fmt: skip
    assert p == [
        "sources.nato.url: expected a string, got the number 5",
        "notifiers.hook.url: expected a string, got the number 7",
    ]
