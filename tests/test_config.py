"""One table of settings: defaults, TOML, environment, validation, and the docs."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatserver.config import SETTINGS, Settings, SettingsError

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_run_on_one_machine_with_no_other_service() -> None:
    """The defaults use embedded SQLite in ./chatserver-data and the in-process broker."""
    settings = Settings.load(environ={})
    assert settings.store_url == "sqlite:///chatserver-data/chat.db"
    assert settings.broker == "memory://"
    assert settings.ws_per_message_deflate is False


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    """CHATSERVER_* variables override the TOML file, which overrides the defaults."""
    config = tmp_path / "chat.toml"
    config.write_text(
        'site_id = "from-file"\nmax_body_chars = 500\nallowed_origins = ["https://a"]\n'
    )
    settings = Settings.load(
        config,
        environ={
            "CHATSERVER_SITE_ID": "from-env",
            "CHATSERVER_ALLOWED_ORIGINS": "https://b, https://c",
        },
    )
    assert settings.site_id == "from-env"
    assert settings.max_body_chars == 500
    assert settings.allowed_origins == ["https://b", "https://c"]


@pytest.mark.parametrize(
    ("environ", "mentions"),
    [
        ({"CHATSERVER_MAX_BODY_CHARS": "many"}, "CHATSERVER_MAX_BODY_CHARS"),
        ({"CHATSERVER_MAX_BODY_CHARS": "0"}, "at least"),
        ({"CHATSERVER_SQLITE_SYNCHRONOUS": "OFF"}, "FULL, NORMAL"),
        ({"CHATSERVER_WS_PER_MESSAGE_DEFLATE": "maybe"}, "true or false"),
        ({"CHATSERVER_RATE_LIMIT_PER_SECOND": "fast"}, "RATE_LIMIT"),
    ],
)
def test_bad_values_are_refused_with_the_setting_named(
    environ: dict[str, str], mentions: str
) -> None:
    """A wrong value stops start-up with a message naming the setting and its source."""
    with pytest.raises(SettingsError) as raised:
        Settings.load(environ=environ)
    assert mentions in str(raised.value)


def test_unknown_setting_in_the_file_is_refused(tmp_path: Path) -> None:
    """A misspelt setting in the TOML file is an error, not silently ignored."""
    config = tmp_path / "chat.toml"
    config.write_text('sight_id = "x"\n')
    with pytest.raises(SettingsError, match="sight_id"):
        Settings.load(config, environ={})


def test_wrong_type_in_the_file_is_refused(tmp_path: Path) -> None:
    """TOML values are type-checked too."""
    config = tmp_path / "chat.toml"
    config.write_text("allowed_origins = 5\n")
    with pytest.raises(SettingsError, match="allowed_origins"):
        Settings.load(config, environ={})


def test_every_setting_is_documented() -> None:
    """docs/operations.md names every setting's environment variable."""
    text = (ROOT / "docs" / "operations.md").read_text()
    missing = [s.env for s in SETTINGS if s.env not in text]
    assert not missing, f"undocumented settings: {missing}"


def test_every_setting_has_help() -> None:
    """Each row of the table says what it is for."""
    assert all(s.help.strip() for s in SETTINGS)
    assert len({s.name for s in SETTINGS}) == len(SETTINGS)


def test_the_settings_table_in_the_docs_is_current() -> None:
    """docs/operations.md carries the table exactly as the code generates it.

    To refresh it, paste the output of
    `python -c "from chatserver.config import settings_table_markdown as t; print(t())"`.
    """
    from chatserver.config import settings_table_markdown

    assert settings_table_markdown() in (ROOT / "docs" / "operations.md").read_text()
