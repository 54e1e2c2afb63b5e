"""``monitor run``: start-up, ``run --once``, and the long-lived daemon.

    startup.py     schema, config sync, seeds and index, before anything runs
    once.py        run --once: every enabled feed polled once
    daemon.py      run: one worker, holding the parts below, with its timed jobs
    dispatch.py    claims due feeds and polls them
    digest_job.py  digests composed on schedule and sent, in threads of their own
    reload.py      a changed config noticed; which changes apply live (pure)
    health.py      /healthz's verdict (pure)
    claims.py      the worker's leases renewed and given back
    metrics.py     the Prometheus metrics of one process
"""
