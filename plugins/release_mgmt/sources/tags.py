"""Choosing the newest version among tags: glob patterns on tag names, semantic-version order (semver 2.0:
pre-releases sort before their release, build metadata does not order), pre-releases only when asked."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

import semver


def semantic(text: str) -> semver.Version | None:
    """``text`` as a semantic version (``1.2`` and ``1`` count as ``1.2.0`` and ``1.0.0``), or None."""
    try:
        return semver.Version.parse(text, optional_minor_and_patch=True)
    except (ValueError, TypeError):
        return None


def newest(tags: Iterable[str], pattern: str, prefix: str = "", prereleases: bool = False) -> str | None:
    """The tag matching ``pattern`` whose name without ``prefix`` is the highest semantic version; ties (same
    version, different build metadata) go to the last name in sorted order, so the answer never depends on the
    order a server lists tags in. None when no tag qualifies."""
    best: tuple[semver.Version, str] | None = None
    for tag in sorted(set(tags)):
        if not fnmatchcase(tag, pattern) or not tag.startswith(prefix):
            continue
        version = semantic(tag[len(prefix) :])
        if version is None or (version.prerelease and not prereleases):
            continue
        if best is None or version.compare(best[0]) >= 0:
            best = (version, tag)
    return best[1] if best else None


def why_none(tags: Iterable[str], pattern: str, prefix: str, prereleases: bool) -> str:
    """Why :func:`newest` found nothing, in words (for the error that stops the run)."""
    names = sorted(set(tags))
    matching = [t for t in names if fnmatchcase(t, pattern)]
    if not names:
        return "it has no tags"
    if not matching:
        sample = ", ".join(names[-5:])
        return f"no tag matches {pattern!r} (newest names: {sample})"
    versions = [t for t in matching if t.startswith(prefix) and semantic(t[len(prefix) :]) is not None]
    if not versions:
        return f"no tag matching {pattern!r} is a semantic version after the prefix {prefix!r}"
    return f"every tag matching {pattern!r} is a pre-release (set prereleases: true to take them)"
