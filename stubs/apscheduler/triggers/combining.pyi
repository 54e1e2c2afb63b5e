from apscheduler.triggers.base import BaseTrigger

class OrTrigger(BaseTrigger):
    def __init__(self, triggers: list[BaseTrigger], jitter: int | None = None) -> None: ...
