"""Stories: the different write-ups of one event, across outlets, grouped as they are
stored.

    signals.py   what an article is recognised by, and which story it joins (pure)
"""
