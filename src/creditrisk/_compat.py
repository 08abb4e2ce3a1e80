"""What the fences around other packages' private parts share: the installed version of a
package, and a version gate that says yes on the release line a fence was written for and
otherwise, once per process and version, one warning line naming the stock path taken."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

_warned: set[tuple[str, str]] = set()


def installed_version(package: str) -> str:
    """The installed version of ``package``, ``"none"`` when it is not installed."""
    try:
        return version(package)
    except PackageNotFoundError:  # pragma: no cover - the fenced packages are runtime deps
        return "none"


def supported(package: str, written_for: str, found: str, *, what: str, fallback: str,
              log: logging.Logger) -> bool:
    """True when ``found`` is on the ``written_for`` release line (e.g. ``"4.7."``);
    otherwise False and, once per process for this package and version, one warning line:
    ``<package> <found> is not the version <what> was written for (...): <fallback>``."""
    if found.startswith(written_for):
        return True
    if (package, found) not in _warned:
        _warned.add((package, found))
        log.warning("%s %s is not the version %s was written for (%sx): %s",
                    package, found, what, written_for, fallback)
    return False
