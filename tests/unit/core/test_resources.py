"""Run resources: reading cores, memory and runtime, and the operator's policy over them."""

from __future__ import annotations

import pytest

from toolchest_wes.core.resources import (
    ResourcePolicy,
    format_bytes,
    parse_bytes,
    parse_cores,
    parse_duration,
)
from toolchest_wes.engines.base import InvalidEngineParameterError, Resources


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1024", 1024),
        ("512M", 512 << 20),
        ("2G", 2 << 30),
        ("2GiB", 2 << 30),
        ("1.5 GB", 3 << 29),
        ("4k", 4096),
        (2048, 2048),
    ],
)
def test_sizes_read_with_binary_units(text: object, size: int) -> None:
    assert parse_bytes(text) == size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("600", 600),
        (90, 90),
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("1d", 86400),
        ("1:30", 90),
        ("1:30:00", 5400),
        ("2-01:00", 2 * 86400 + 3600),
    ],
)
def test_durations_read_in_seconds_or_slurm_clock_form(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("parse", "text", "fragment"),
    [
        (parse_cores, "0", "at least 1"),
        (parse_cores, "1.5", "whole number"),
        (parse_cores, "lots", "whole number"),
        (parse_bytes, "-1G", "512M"),
        (parse_bytes, "2X", "512M"),
        (parse_duration, "0", "longer than zero"),
        (parse_duration, "soon", "15m"),
    ],
)
def test_unreadable_values_say_what_is_expected(parse: object, text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse(text)  # type: ignore[operator]


def test_sizes_shown_in_the_largest_unit_that_divides_them() -> None:
    assert [format_bytes(n) for n in (2 << 30, 512 << 20, 1536, 1000)] == [
        "2G",
        "512M",
        "1536",
        "1000",
    ]


def test_without_a_policy_a_run_gets_what_it_asks_for() -> None:
    resources, rest = ResourcePolicy().resolve(
        {"cores": "2", "memory": "1G", "runtime": "10m", "--parallel": "true"}
    )
    assert resources == Resources(cores=2, memory_bytes=1 << 30, runtime_s=600)
    assert rest == {"--parallel": "true"}


def test_spellings_of_other_servers_and_engines_mean_the_same() -> None:
    resources, rest = ResourcePolicy().resolve(
        {"--maxCores": 3, "max-memory": "2G", "max_runtime": "1h"}
    )
    assert resources == Resources(cores=3, memory_bytes=2 << 30, runtime_s=3600)
    assert rest == {}


def test_defaults_apply_and_the_limit_stands_in_for_a_missing_default() -> None:
    policy = ResourcePolicy.from_settings({"cores": "1"}, {"cores": "4", "runtime": "2h"}, [])
    resources, _ = policy.resolve({})
    assert resources == Resources(cores=1, runtime_s=7200)


def test_a_request_over_the_limit_is_refused_with_the_limit() -> None:
    policy = ResourcePolicy.from_settings({}, {"memory": "4G"}, [])
    with pytest.raises(InvalidEngineParameterError, match=r"'memory' asks for 8G.*at most 4G"):
        policy.resolve({"memory": "8G"})


def test_a_fixed_resource_cannot_be_set_per_run() -> None:
    policy = ResourcePolicy.from_settings({"cores": "2"}, {}, ["cores"])
    with pytest.raises(InvalidEngineParameterError, match=r"'cores' is set by this server"):
        policy.resolve({"--cores": "8"})
    assert policy.resolve({})[0].cores == 2


def test_an_unreadable_request_names_the_parameter() -> None:
    with pytest.raises(InvalidEngineParameterError, match=r"'runtime' takes a duration"):
        ResourcePolicy().resolve({"runtime": "soon"})


def test_two_spellings_of_one_resource_must_agree() -> None:
    with pytest.raises(InvalidEngineParameterError, match="both set cores"):
        ResourcePolicy().resolve({"cores": "2", "--maxCores": "4"})


def test_a_stored_run_under_a_stricter_policy_falls_back_rather_than_failing() -> None:
    policy = ResourcePolicy.from_settings({"cores": "1"}, {"cores": "2"}, [])
    resources, _ = policy.resolve({"cores": "16"}, strict=False)
    assert resources.cores == 1


@pytest.mark.parametrize(
    ("defaults", "limits", "fixed", "fragment"),
    [
        ({"gpus": "1"}, {}, [], "run default 'gpus': not a resource"),
        ({}, {"memory": "lots"}, [], "run limit memory takes a size"),
        ({"cores": "8"}, {"cores": "4"}, [], "run default cores=8 is above its run limit 4"),
        ({}, {}, ["disk"], "run fixed 'disk': not a resource"),
    ],
)
def test_a_bad_policy_names_the_setting(
    defaults: dict[str, str], limits: dict[str, str], fixed: list[str], fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        ResourcePolicy.from_settings(defaults, limits, fixed)


def test_the_policy_describes_itself_for_service_info() -> None:
    policy = ResourcePolicy.from_settings({"cores": "1"}, {"memory": "4G"}, ["runtime"])
    assert policy.describe() == [
        {"name": "cores", "type": "int", "default": "1", "maximum": None, "user_settable": True},
        {
            "name": "memory",
            "type": "bytes",
            "default": None,
            "maximum": "4G",
            "user_settable": True,
        },
        {
            "name": "runtime",
            "type": "seconds",
            "default": None,
            "maximum": None,
            "user_settable": False,
        },
    ]
    assert [(p.name, p.default_value) for p in policy.default_parameters()] == [
        ("cores", "1"),
        ("memory", "4G"),
    ]
