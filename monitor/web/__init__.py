"""The review page and its JSON API (the only aiohttp.web user), served by
``monitor run`` on ``[daemon] listen`` beside ``/healthz`` and ``/metrics``, and by
``monitor web`` alone.

    app.py       the application: routes, sign-in and CSRF checks, security headers;
                 the server that runs it
    context.py   what handlers share: settings, sessions, clock, signing keys
    security.py  sign-in (token or password hash), signed session cookies, CSRF tokens
                 (pure)
    views.py     what each page and API answer shows, read from the store
    pages.py     the HTML pages (Jinja2 templates in templates/, style in static/)
    api.py       the JSON API under /api/v1/, paginated with cursors
    openapi.py   the API's OpenAPI document
    charts.py    small inline SVG charts (pure)
"""
