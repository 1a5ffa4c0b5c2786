"""Sync windows read their cron schedules as cron does (and Argo CD's robfig/cron): days of the week counted
from Sunday, 0 and 7 both Sunday, and a restricted day of the month OR a restricted day of the week."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from reconciler.config import EnvironmentConfig
from reconciler.pipeline.windows import hold

BERLIN = ZoneInfo("Europe/Berlin")


def _env(schedule: str, duration: str = "1h", kind: str = "deny") -> EnvironmentConfig:
    return EnvironmentConfig.model_validate({
        "name": "w", "source": {"url": "https://git.example.test/platform.git"},
        "syncWindows": [{"kind": kind, "schedule": schedule, "duration": duration, "timeZone": "Europe/Berlin"}],
        "stacks": [{"name": "app", "path": "overlays/app"}]})


def _held(env: EnvironmentConfig, year: int, month: int, day: int, hour: int, minute: int = 30) -> bool:
    return hold(env, "app", datetime(year, month, day, hour, minute, tzinfo=BERLIN)) is not None


def test_a_weekday_deny_window_1_to_5_holds_monday_to_friday_and_not_saturday() -> None:
    env = _env("0 22 * * 1-5")  # 2026-12-07 is a Monday

    held = [_held(env, 2026, 12, day, 22) for day in range(6, 13)]  # Sunday 6th to Saturday 12th

    assert held == [False, True, True, True, True, True, False]


@pytest.mark.parametrize("sunday", ["0", "7", "sun", "SUN"])
def test_day_0_day_7_and_sun_are_all_sunday(sunday: str) -> None:
    env = _env(f"0 22 * * {sunday}")

    assert _held(env, 2026, 12, 6, 22) and not _held(env, 2026, 12, 7, 22)  # Sunday, then Monday


def test_a_step_over_the_week_counts_from_sunday() -> None:
    env = _env("0 22 * * */2")  # Sunday, Tuesday, Thursday, Saturday

    assert [_held(env, 2026, 12, day, 22) for day in range(6, 13)] == [True, False, True, False, True, False, True]


def test_a_schedule_restricting_both_days_opens_on_the_first_of_the_month_and_on_mondays() -> None:
    env = _env("0 9 1 * 1")  # 2027-01-01 is a Friday

    assert _held(env, 2026, 12, 7, 9) and _held(env, 2027, 1, 1, 9)
    assert not _held(env, 2026, 12, 8, 9)


@pytest.mark.parametrize("schedule, problem", [
    ("0 22 * * 5-1", "day-of-week range '5-1' runs backwards"),
    ("0 22 * * 8", "day of week '8' in '8' is not 0-7 or sun-sat"),
    ("0 22 * *", "it has 4 fields"),
])
def test_a_schedule_cron_would_not_read_is_an_error_naming_the_field(schedule: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"schedule '{schedule}' is not a 5-field cron expression: {problem}")):
        _env(schedule)
