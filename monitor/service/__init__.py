"""``monitor run``: start-up, ``run --once``, and the long-lived daemon.

    daemon.py     start-up, run --once and the daemon (dispatch, APScheduler jobs, shutdown)
    reload.py     which config changes apply live and which need a restart (pure)
    metrics.py    the Prometheus metrics of one process
    endpoints.py  /healthz and /metrics over HTTP
"""
