from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

from apscheduler.triggers.base import BaseTrigger

class Job:
    id: str
    next_run_time: datetime | None

class AsyncIOScheduler:
    running: bool
    def __init__(self, *, timezone: tzinfo | str | None = None, **options: Any) -> None: ...
    def start(self, paused: bool = False) -> None: ...
    def shutdown(self, wait: bool = True) -> None: ...
    def add_job(
        self,
        func: Callable[..., Any],
        trigger: BaseTrigger | None = None,
        *,
        id: str | None = None,
        name: str | None = None,
        max_instances: int = 1,
        coalesce: bool = ...,
        misfire_grace_time: int | None = ...,
        next_run_time: datetime | None = ...,
        replace_existing: bool = False,
    ) -> Job: ...
    def get_job(self, job_id: str) -> Job | None: ...
    def modify_job(self, job_id: str, **changes: Any) -> Job: ...
    def reschedule_job(self, job_id: str, trigger: BaseTrigger) -> Job: ...
