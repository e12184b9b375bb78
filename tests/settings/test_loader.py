"""settings.load: parsing by field type, precedence, and refusals that name the key and the form."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from settings import LOG_LEVEL, Expected, SettingsError, Spec, at_most, choice, load


@dataclass(frozen=True, slots=True)
class Point:
    x: int
    y: int

    @classmethod
    def parse(cls, text: str) -> Point:
        x, sep, y = text.partition(",")
        if not sep or not x.isdigit() or not y.isdigit():
            raise Expected("x,y such as 1,2")
        return cls(int(x), int(y))


@dataclass(frozen=True, slots=True)
class Toy:
    name: str = "toy"
    count: int = 1
    wait_s: float = 2.0
    ratio: float = 0.5
    on: bool = False
    limit: int | None = None
    tags: tuple[str, ...] = ()
    where: Point = Point(0, 0)
    level: str = "INFO"
    token: str | None = field(default=None, repr=False)
    extra: tuple[str, ...] = ()  # filled by the program, not loaded


class ToyError(SettingsError):
    pass


def _even(value: int) -> int:
    if value % 2:
        raise ValueError(f"{value} is odd: the toy counts in pairs")
    return value


SPEC = Spec(
    target=Toy,
    section="toy",
    env_prefix="TOY_",
    error=ToyError,
    aliases={"TOY_COUNT_ALIAS": "count", "SHARED_NAME": "name"},
    secrets={"token": "TOY_SECRET_TOKEN"},
    checks={"level": LOG_LEVEL, "ratio": at_most(1, form="a share from 0 to 1"), "limit": _even},
    zero_ok=frozenset({"ratio"}),
    skip=frozenset({"extra"}),
    tables={"parts": "[parts.NAME]"},
)


def values(env: dict[str, str] | None = None, file: Path | None = None, **flags: Any) -> dict[str, Any]:
    return load(SPEC, file, env, flags).values


def message(env: dict[str, str] | None = None, file: Path | None = None, **flags: Any) -> str:
    with pytest.raises(ToyError) as info:
        load(SPEC, file, env, flags)
    return str(info.value)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "toy.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("setting", "raw", "expected"),
    [
        ("name", "  spaced  ", "spaced"),
        ("count", " 7 ", 7),
        ("wait_s", "0.25", 0.25),
        ("wait_s", "3", 3.0),
        ("ratio", "0", 0.0),
        ("on", "YES", True),
        ("on", " off ", False),
        ("limit", "4", 4),
        ("limit", "", None),
        ("tags", "a, b,,c ", ("a", "b", "c")),
        ("tags", "", ()),
        ("where", "3,4", Point(3, 4)),
        ("level", "debug", "DEBUG"),
    ],
)
def test_environment_strings_parse_by_field_type(setting: str, raw: str, expected: object) -> None:
    assert values({"TOY_" + setting.upper(): raw}) == {setting: expected}


def test_file_values_parse_by_field_type(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        'count = 3\nwait_s = 1\non = true\ntags = ["x", 5]\nwhere = "1,2"\nlimit = 6\n',
    )
    assert values(file=file) == {
        "count": 3,
        "wait_s": 1.0,
        "on": True,
        "tags": ("x", "5"),
        "where": Point(1, 2),
        "limit": 6,
    }


def test_typed_flag_values_pass_as_they_are() -> None:
    assert values(where=Point(5, 6), wait_s=0.5, on=True) == {"where": Point(5, 6), "wait_s": 0.5, "on": True}


def test_defaults_then_file_then_environment_then_flags(tmp_path: Path) -> None:
    file = write(tmp_path, "[toy]\ncount = 2\nwait_s = 3\nratio = 0.1\n")
    env = {"TOY_WAIT_S": "4", "TOY_RATIO": "0.2"}
    loaded = load(SPEC, file, env, {"ratio": 0.3, "count": None}, base={"name": "base", "count": 9})
    config = Toy(**loaded.values)
    assert (config.name, config.count, config.wait_s, config.ratio) == ("base", 2, 4.0, 0.3)
    assert config.on is False  # default
    assert Toy(**values()) == Toy()


def test_an_alias_sets_the_setting_and_the_programs_own_name_wins() -> None:
    assert values({"TOY_COUNT_ALIAS": "5"}) == {"count": 5}
    assert values({"TOY_COUNT": "6", "TOY_COUNT_ALIAS": "5"}) == {"count": 6}
    assert values({"SHARED_NAME": "x", "TOY_NAME": "y"}) == {"name": "y"}


def test_alias_only_refuses_the_prefixed_name() -> None:
    spec = Spec(
        target=Toy, section="toy", env_prefix="TOY_", aliases={"SHARED_NAME": "name"}, alias_only=True
    )
    assert load(spec, env={"SHARED_NAME": "x"}).values == {"name": "x"}
    with pytest.raises(SettingsError, match=r"^TOY_NAME is not read: set SHARED_NAME instead$"):
        load(spec, env={"TOY_NAME": "y"})


def test_unrelated_variables_are_ignored() -> None:
    assert values({"HOME": "/root", "MY_TOY_COUNT": "x", "TOYCOUNT": "x"}) == {}


def test_a_secret_comes_from_its_variable_only(tmp_path: Path) -> None:
    assert values({"TOY_SECRET_TOKEN": "s3cret"}) == {"token": "s3cret"}
    assert values({"TOY_SECRET_TOKEN": ""}) == {"token": None}
    file = write(tmp_path, 'token = "s3cret"\n')
    text = message(file=file)
    assert text == f"token may not be set in {file}: it is a secret, set TOY_SECRET_TOKEN"
    assert (
        message({"TOY_TOKEN": "s3cret"})
        == "TOY_TOKEN is not read: the token comes only from TOY_SECRET_TOKEN"
    )
    flag = "--token is not accepted: it is a secret, set TOY_SECRET_TOKEN"
    assert message(token="s3cret") == flag  # noqa: S106  (a test value, not a real secret)


def test_unknown_file_key_names_it_and_the_known_ones(tmp_path: Path) -> None:
    file = write(tmp_path, "cuont = 1\n")
    known = "count, level, limit, name, on, ratio, tags, token, wait_s, where"
    assert message(file=file) == f"unknown setting 'cuont' in {file}: known are {known} and [parts.NAME]"


def test_unknown_variable_names_it_and_the_known_ones() -> None:
    assert message({"TOY_CUONT": "1"}) == (
        "unknown environment setting TOY_CUONT: known are SHARED_NAME, TOY_COUNT_ALIAS, TOY_SECRET_TOKEN,"
        " TOY_<COUNT|LEVEL|LIMIT|NAME|ON|RATIO|TAGS|WAIT_S|WHERE>"
    )
    assert "TOY_EXTRA" in message({"TOY_EXTRA": "x"})  # skipped fields are not settings here


def test_unknown_flag_is_an_error() -> None:
    assert message(colour="red") == "unknown setting 'colour' from --colour"


@pytest.mark.parametrize(
    ("env", "text"),
    [
        ({"TOY_COUNT": "2.5"}, "count (from TOY_COUNT) is '2.5': use a whole number, above 0"),
        ({"TOY_COUNT": "0"}, "count (from TOY_COUNT) is '0': use a whole number, above 0"),
        ({"TOY_WAIT_S": "soon"}, "wait_s (from TOY_WAIT_S) is 'soon': use a positive number of seconds"),
        ({"TOY_WAIT_S": "nan"}, "wait_s (from TOY_WAIT_S) is 'nan': use a positive number of seconds"),
        ({"TOY_WAIT_S": "-inf"}, "wait_s (from TOY_WAIT_S) is '-inf': use a positive number of seconds"),
        ({"TOY_RATIO": "-0.1"}, "ratio (from TOY_RATIO) is '-0.1': use a number, 0 or more"),
        ({"TOY_RATIO": "2"}, "ratio (from TOY_RATIO) is '2': use a share from 0 to 1"),
        ({"TOY_ON": "maybe"}, "on (from TOY_ON) is 'maybe': use true or false"),
        ({"TOY_ON": ""}, "on (from TOY_ON) is '': use true or false"),
        ({"TOY_WHERE": "3"}, "where (from TOY_WHERE) is '3': use x,y such as 1,2"),
        ({"TOY_LEVEL": "loud"}, "level (from TOY_LEVEL) is 'loud': use one of DEBUG, INFO, WARNING, ERROR"),
        ({"TOY_LIMIT": "3"}, "limit (from TOY_LIMIT): 3 is odd: the toy counts in pairs"),
    ],
)
def test_bad_values_name_the_setting_its_source_and_the_form(env: dict[str, str], text: str) -> None:
    assert message(env) == text


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ("count = true", "count (from {file}) is True: use a whole number, above 0"),
        ("count = 2.0", "count (from {file}) is 2.0: use a whole number, above 0"),
        ("wait_s = false", "wait_s (from {file}) is False: use a positive number of seconds"),
        ("name = 5", "name (from {file}) is 5: use a string"),
        ("where = 5", "where (from {file}) is 5: use a string"),
        ("tags = [{a = 1}]", "tags (from {file}) is [{'a': 1}]: use a list of strings (comma-separated in"),
    ],
)
def test_bad_file_values_name_the_file(tmp_path: Path, line: str, text: str) -> None:
    file = write(tmp_path, line + "\n")
    assert message(file=file).startswith(text.replace("{file}", str(file)))


def test_a_check_on_a_list_names_the_item() -> None:
    spec = Spec(target=Toy, section="toy", env_prefix="TOY_", checks={"tags": choice("a", "b")})
    assert load(spec, env={"TOY_TAGS": "a,b"}).values == {"tags": ("a", "b")}
    with pytest.raises(SettingsError) as info:
        load(spec, env={"TOY_TAGS": "a,c"})
    assert str(info.value) == "tags (from TOY_TAGS) has 'c': use one of a, b"


def test_a_bad_secret_is_refused_without_its_value() -> None:
    spec = Spec(
        target=Toy,
        section="toy",
        env_prefix="TOY_",
        secrets={"token": "TOY_TOKEN"},
        checks={"token": choice("https://", form="an https:// URL")},
    )
    with pytest.raises(SettingsError) as info:
        load(spec, env={"TOY_TOKEN": "ftp://s3cret"})
    assert str(info.value) == "token (from TOY_TOKEN) is not an https:// URL"


def test_file_section_and_tables(tmp_path: Path) -> None:
    file = write(tmp_path, "[toy]\ncount = 2\n[parts.a]\nsize = 1\n")
    loaded = load(SPEC, file)
    assert (loaded.values, loaded.tables) == ({"count": 2}, {"parts": {"a": {"size": 1}}})
    top = load(SPEC, write(tmp_path, "count = 3\n"))
    assert (top.values, top.tables) == ({"count": 3}, {})


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('count = 3\n[toy]\nname = "x"\n', "count in {file} must go under [toy] (or drop the table)"),
        ("toy = 5\n", "[toy] in {file} must be a table of settings"),
        ("parts = 5\n", "parts in {file} must be tables: [parts.NAME]"),
        ("count = \n", "cannot read config file {file}: "),
    ],
)
def test_file_shape_errors(tmp_path: Path, text: str, error: str) -> None:
    file = write(tmp_path, text)
    assert message(file=file).startswith(error.format(file=file))


def test_missing_or_undecodable_file_is_a_settings_error(tmp_path: Path) -> None:
    assert message(file=tmp_path / "missing.toml").startswith("cannot read config file")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe")
    assert message(file=binary).startswith(f"cannot read config file {binary}")


def test_the_error_is_the_programs_and_a_value_error() -> None:
    with pytest.raises(ValueError, match="count"):
        load(SPEC, env={"TOY_COUNT": "x"})
    assert issubclass(ToyError, SettingsError)
