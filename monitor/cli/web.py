"""web: the review page and its API alone, for a machine that does not poll."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import getpass
import logging
import signal
import sys
from typing import TextIO

from sqlalchemy import Engine

from monitor import db
from monitor.cli.common import EXIT_OK, ready_engine
from monitor.config import Settings, listen_problem, public_listen_problem, split_listen
from monitor.errors import UsageError

log = logging.getLogger(__name__)


def cmd_web(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    if args.hash_password:
        return _hash_password(out)
    listen = settings.daemon.listen if args.listen is None else args.listen
    if not listen:
        raise UsageError("[daemon] listen is \"\": give an address with --listen HOST:PORT")
    for problem in (listen_problem(listen), public_listen_problem(listen, settings.web)):
        if problem:
            raise UsageError(f"--listen {listen}: {problem}" if args.listen is not None
                             else f"{settings.path}: daemon.listen: {problem}")
    engine = ready_engine(settings)
    try:
        asyncio.run(_serve(settings, engine, listen))
    finally:
        engine.dispose()
    return EXIT_OK


async def _serve(settings: Settings, engine: Engine, listen: str) -> None:
    from monitor.web.app import WebServer, make_app
    from monitor.web.context import Context

    host, port = split_listen(listen)
    server = WebServer(make_app(Context(settings, db.session_factory(engine))), host, port)
    try:
        await server.start()
    except OSError as exc:
        raise UsageError(f"cannot listen on {listen}: {exc.strerror or exc}; "
                         "give another address with --listen") from exc
    # What start-up made (modules, templates, the engine) lives as long as the process:
    # kept out of the collector's full passes, which otherwise rescan it and add tens
    # of milliseconds to whichever page they interrupt.
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("serving %s/healthz and the review page at %s/ (%s); stop with SIGINT or "
             "SIGTERM", server.url, server.url, db.describe(engine))
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await server.close()
    log.info("stopped")


def _hash_password(out: TextIO) -> int:
    """Print an argon2id hash of a password read from the terminal (twice) or, when
    piped, from the first line of standard input: for ``[web] auth``."""
    from monitor.web.security import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise UsageError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 10:
        raise UsageError("choose a password of at least 10 characters")
    out.write(hash_password(password) + "\n")
    return EXIT_OK
