"""The handler that runs an item's trip in order, and owns its transactions:
feed poll -> entries -> page -> extraction -> dedup -> store -> rules -> alerts.

    poll.py   one feed's poll, end to end
"""
