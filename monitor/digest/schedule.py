"""Cron schedules (pure): when a 5-field cron expression next fires, in a time zone.

(The daemon runs the digest job on it through an APScheduler trigger of its own,
:class:`monitor.service.digest_job.ScheduleTrigger`.)

APScheduler 3.x's ``CronTrigger`` does the calendar arithmetic (months, leap years,
daylight-saving gaps and repeats). Two places where it differs from cron are
bridged here, so an expression means what ``crontab(5)`` says it means:

* day-of-week numbers: cron counts 0 (and 7) as Sunday, APScheduler 3.x counts
  0 as Monday (its ``from_crontab`` passes them through unchanged);
* a day-of-month *and* a day-of-week both restricted (``0 7 1 * mon``) fire on
  either in cron ("the 1st, and every Monday"), on both in APScheduler.

Expressions are validated by :func:`monitor.config.cron_problem` at load.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from apscheduler.triggers.cron import CronTrigger

_ONE_SECOND = timedelta(seconds=1)
_DAY_NAMES = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}


class CronSchedule:
    """A 5-field cron expression evaluated in ``tz``."""

    def __init__(self, expr: str, tz: tzinfo) -> None:
        self.expr = expr
        self.tz = tz
        minute, hour, dom, month, dow = expr.split()
        days = _apscheduler_weekdays(dow)

        def trigger(day: str, day_of_week: str) -> CronTrigger:
            return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                               day_of_week=day_of_week, timezone=tz)

        if dom.startswith("*") or dow.startswith("*"):
            self._triggers = [trigger(dom, days)]
        else:  # cron's rule: either day field may match
            self._triggers = [trigger(dom, "*"), trigger("*", days)]

    def next_after(self, moment: datetime) -> datetime:
        """The first firing strictly after ``moment`` (aware), as an aware datetime.

        A local time that occurs twice (the hour repeated when daylight saving
        ends) fires once, at its first occurrence, as cron does.
        """
        while True:
            fires = [t.get_next_fire_time(None, _just_after(moment)) for t in self._triggers]
            fire = min(f for f in fires if f is not None)
            wall = fire.astimezone(self.tz).replace(tzinfo=None)
            first = wall.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
            if first >= fire.astimezone(UTC):  # (aware datetimes in one zone compare naively)
                return fire
            moment = fire

    def __repr__(self) -> str:
        return f"CronSchedule({self.expr!r})"


def _just_after(moment: datetime) -> datetime:
    # CronTrigger returns fire times >= now; cron's "next" is strictly after. Fire times
    # have whole seconds, so the next whole second is strictly after.
    # In UTC: arithmetic on a zone's wall time loses which of a repeated hour it was.
    return moment.astimezone(UTC).replace(microsecond=0) + _ONE_SECOND


def _apscheduler_weekdays(field: str) -> str:
    """A cron day-of-week field as an explicit APScheduler 3.x list (0 = Monday)."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for item in field.split(","):
        rng, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if rng == "*":
            lo, hi = 0, 6
        else:
            bounds = [_day_number(b) for b in rng.split("-")]
            lo, hi = bounds[0], bounds[-1]
            if len(bounds) == 1 and step_text:  # "1/2": from 1 to the end, every 2nd day
                hi = 7
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(str((d + 6) % 7) for d in sorted(days))


def _day_number(text: str) -> int:
    return int(text) if text.isdigit() else _DAY_NAMES[text.lower()]

