"""Hot reload: which parts of a changed config can take effect in a running daemon.

Feeds, rules, ``[alerts]``, ``[poll]``, ``[digest]``, ``[retention]`` (but for
``every``), ``[stories]``, ``[smtp]``, ``[[channels]]`` and the log level apply at
once. The rest (the database, the seeds, ``[fetch]``, ``[extract]``, ``[dedup]``,
``[daemon]`` and the log format) is built into the running process; a change there is
reported and waits for a restart.
Pure, but for :func:`fingerprint` and :class:`ConfigWatch`, which read the file.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from monitor.config import Settings, load_settings

# (label, attribute) of the settings that apply only after a restart.
RESTART_ONLY = (("database", "database"), ("seeds", "seeds_path"), ("fetch", "fetch"),
                ("extract", "extract"), ("dedup", "dedup"), ("daemon", "daemon"),
                ("logging.format", "log_format"))


def fingerprint(path: Path) -> str | None:
    """The config file's content hash; None when it cannot be read (mid-rename, say)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def restart_needed(running: Settings, loaded: Settings) -> list[str]:
    """The sections of ``loaded`` that differ from ``running`` and need a restart."""
    return [label for label, attr in RESTART_ONLY
            if getattr(running, attr) != getattr(loaded, attr)]


def applicable(running: Settings, loaded: Settings) -> Settings:
    """``loaded``, with the restart-only sections kept as they run now."""
    return replace(loaded, **{attr: getattr(running, attr) for _, attr in RESTART_ONLY})


def live_changes(running: Settings, loaded: Settings) -> list[str]:
    """The live sections that changed, for the log."""
    pairs = (("feeds", "feeds"), ("rules", "rules"), ("alerts", "alerts"), ("poll", "poll"),
             ("digest", "digest"), ("retention", "retention"), ("stories", "stories"),
             ("smtp", "smtp"), ("channels", "channels"), ("logging.level", "log_level"))
    changed = [label for label, attr in pairs if getattr(running, attr) != getattr(loaded, attr)]
    if "smtp" not in changed and running.smtp.password != loaded.smtp.password:
        changed.append("smtp")  # the password is not compared with the rest
    return changed


def rule_changes(running: Settings, loaded: Settings) -> str:
    """Which rules a reload adds, changes (query or recipients) and removes, by name:
    "added 'Cuba'; changed 'Russia' (query); removed 'Old'" ("" when none)."""
    before = {r.name: r for r in running.rules}
    after = {r.name: r for r in loaded.rules}
    changed = []
    for name, rule in after.items():
        old = before.get(name)
        if old is None:
            continue
        what = [label for label, differs in (("query", old.query != rule.query),
                                             ("recipients", old.recipients != rule.recipients))
                if differs]
        if what:
            changed.append(f"{name!r} ({', '.join(what)})")
    parts = [f"{label} {', '.join(names)}" for label, names in (
        ("added", [repr(n) for n in after if n not in before]),
        ("changed", changed),
        ("removed", [repr(n) for n in before if n not in after])) if names]
    return "; ".join(parts)


class ConfigWatch:
    """Notices a changed config file (by its content hash) or a forced reload (SIGHUP)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = fingerprint(path)
        self._forced = False

    def force(self) -> None:
        """Re-read at the next look, changed or not."""
        self._forced = True

    def retry(self) -> None:
        """The last change could not be applied: read it again at the next look."""
        self._stamp = None

    def changed(self) -> Settings | None:
        """The file's settings if it changed (or a reload was forced) since the last
        look, else None. Reads the file. Raises ConfigError for an invalid edit (the
        edit is not looked at again until the file changes)."""
        stamp = fingerprint(self.path)
        forced, self._forced = self._forced, False
        if stamp is None or (stamp == self._stamp and not forced):
            return None
        self._stamp = stamp
        return load_settings(self.path)
