"""The handler that runs an item's trip in order, and owns its transactions:
feed poll -> entries -> page -> extraction -> dedup -> store -> rules -> alerts.

    context.py   what a poll needs from outside (all side effects), the rules
                 compiled for matching, what a poll reports
    poll.py      one feed's poll, end to end, and its outcome
    entries.py   a feed's new entries: pages fetched and extracted, each entry decided
                 and stored in a transaction of its own, under its story's locks
"""
