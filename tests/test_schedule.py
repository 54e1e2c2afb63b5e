"""Cron schedules mean what crontab(5) says, in the digest's time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from monitor.digest.schedule import CronSchedule

CARACAS = ZoneInfo("America/Caracas")  # UTC-4, no daylight saving
BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday, 08:00 in Caracas


def fires(expr: str, tz: ZoneInfo, n: int = 4, start: datetime = START) -> list[str]:
    schedule, t, out = CronSchedule(expr, tz), start, []
    for _ in range(n):
        t = schedule.next_after(t)
        out.append(t.astimezone(tz).strftime("%a %d %b %H:%M"))
    return out


@pytest.mark.parametrize(("expr", "expected"), [
    ("0 7 * * *", ["Tue 24 Nov 07:00", "Wed 25 Nov 07:00", "Thu 26 Nov 07:00", "Fri 27 Nov 07:00"]),
    # cron counts Sunday as 0 and as 7 (APScheduler 3.x alone would read 0 as Monday)
    ("0 7 * * 0", ["Sun 29 Nov 07:00", "Sun 06 Dec 07:00", "Sun 13 Dec 07:00", "Sun 20 Dec 07:00"]),
    ("0 7 * * 7", ["Sun 29 Nov 07:00", "Sun 06 Dec 07:00", "Sun 13 Dec 07:00", "Sun 20 Dec 07:00"]),
    ("0 7 * * 1-5", ["Tue 24 Nov 07:00", "Wed 25 Nov 07:00", "Thu 26 Nov 07:00", "Fri 27 Nov 07:00"]),
    ("30 18 * * fri,sat", ["Fri 27 Nov 18:30", "Sat 28 Nov 18:30", "Fri 04 Dec 18:30",
                           "Sat 05 Dec 18:30"]),
    ("0 9 * * */3", ["Wed 25 Nov 09:00", "Sat 28 Nov 09:00", "Sun 29 Nov 09:00", "Wed 02 Dec 09:00"]),
    # both day fields restricted: either one matches (the 1st of the month, and Mondays)
    ("0 7 1 * mon", ["Mon 30 Nov 07:00", "Tue 01 Dec 07:00", "Mon 07 Dec 07:00", "Mon 14 Dec 07:00"]),
    ("*/20 8 * * *", ["Mon 23 Nov 08:20", "Mon 23 Nov 08:40", "Tue 24 Nov 08:00", "Tue 24 Nov 08:20"]),
    ("0 6 29 feb *", ["Tue 29 Feb 06:00", "Sun 29 Feb 06:00", "Fri 29 Feb 06:00", "Wed 29 Feb 06:00"]),
])
def test_next_fire_times(expr: str, expected: list[str]) -> None:
    assert fires(expr, CARACAS) == expected


def test_next_is_strictly_after() -> None:
    at_seven = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)  # 07:00 in Caracas
    assert CronSchedule("0 7 * * *", CARACAS).next_after(at_seven) == datetime(
        2026, 11, 25, 11, 0, tzinfo=UTC)


def test_daylight_saving_days_fire_once_at_the_local_time() -> None:
    # 29 March 2026: Berlin skips 02:00-03:00; 25 October: it repeats 02:00-03:00.
    spring = [CronSchedule("0 7 * * *", BERLIN).next_after(
        datetime(2026, 3, d, 12, tzinfo=UTC)) for d in (27, 28)]
    assert [t.astimezone(UTC).hour for t in spring] == [6, 5]  # CET, then CEST
    autumn = fires("30 2 * * *", BERLIN, 3, datetime(2026, 10, 24, 12, tzinfo=UTC))
    assert autumn == ["Sun 25 Oct 02:30", "Mon 26 Oct 02:30", "Tue 27 Oct 02:30"]
