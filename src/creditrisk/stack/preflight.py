"""Before ``stack up`` starts anything: no stack running from this state folder, the
config exists, the executables of the table's servers are found (a missing required one
is an error, a missing optional one a note), and every port is free."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from creditrisk.stack.layout import PORT_SETTINGS, StackLayout, port_is_free
from creditrisk.stack.programs import EXECUTABLES, SERVERS, Server, Tools
from creditrisk.stack.supervisor import StackError, daemon_pid

#: How to get the executables when they are missing (by EXECUTABLES key).
INSTALL_HINTS = {
    "prometheus": "sudo bash scripts/install-system-deps.sh --only prometheus "
                  "prometheus-pushgateway (or apt-get install prometheus "
                  "prometheus-pushgateway), or the release binaries from "
                  "https://prometheus.io/download/ on PATH",
    "moto_server": "pip install 'moto[server]' (part of the dev extra: make install), or "
                   "point at your own S3/MinIO with --s3-endpoint URL",
    "mlflow": "make install (mlflow is part of the project's dependencies)",
}
INSTALL_HINTS["pushgateway"] = INSTALL_HINTS["prometheus"]


class StackRunning(StackError):
    """A stack is already running from this state folder."""


@dataclass(frozen=True)
class Preflight:
    """What this stack will run, and the notes on what it runs without."""

    tools: Tools
    servers: tuple[Server, ...]
    missing: list[str] = field(default_factory=list)

    @property
    def with_prometheus(self) -> bool:
        return any(s.name == "prometheus" for s in self.servers)


def _which(*names: str, bin_dir: Path) -> str | None:
    """This environment's own executable first (its pinned mlflow and moto), then PATH."""
    for n in names:
        found = shutil.which(n, path=str(bin_dir)) or shutil.which(n)
        if found:
            return found
    return None


def find_tools(layout: StackLayout) -> dict[str, str | None]:
    return {key: _which(*names, bin_dir=layout.bin_dir) for key, names in EXECUTABLES.items()}


def _missing_note(tools: Tools, left_out: list[Server]) -> list[str]:
    """One note naming the executables not found and the servers left out for them."""
    if not left_out:
        return []
    absent = [t for t in dict.fromkeys(t for s in left_out for t in s.needs)
              if not tools.get(t)]
    names = " and ".join(s.what for s in left_out)
    return [f"{', '.join(EXECUTABLES[t][0] for t in absent)} not found: the stack runs "
            f"without {names} (the jobs' metrics are not pushed). Install: "
            f"{INSTALL_HINTS[absent[0]]}"]


def _check_ports(layout: StackLayout, *, with_prometheus: bool) -> None:
    busy = {k: v for k, v in layout.local_ports(with_prometheus=with_prometheus).items()
            if not port_is_free(v)}
    if busy:
        hints = ", ".join(f"{v} ({k}: CREDITRISK_{PORT_SETTINGS[k].upper()})"
                          for k, v in busy.items())
        raise StackError(f"port(s) in use on 127.0.0.1: {hints}; stop what uses them or "
                         "choose other ports with those variables")


def preflight(layout: StackLayout, config: Path | None) -> Preflight:
    """Everything ``up`` checks before it changes anything; raises :class:`StackError`."""
    pid = daemon_pid(layout)
    if pid is not None:
        raise StackRunning(
            f"a stack is already running from {layout.root} (supervisord pid {pid}); "
            "`creditrisk stack status` shows it, `creditrisk stack down` stops it")
    if config is not None and not config.exists():
        raise StackError(f"config file {config} does not exist")
    tools = find_tools(layout)
    wanted = [s for s in SERVERS if s.wanted(layout)]
    for s in wanted:
        absent = [t for t in s.needs if not tools.get(t)]
        if s.required and absent:
            raise StackError(f"{s.what} cannot start: `{EXECUTABLES[absent[0]][0]}` is not "
                             f"installed: {INSTALL_HINTS[absent[0]]}")
    servers = tuple(s for s in wanted if s.runs(layout, tools))
    checked = Preflight(tools, servers, _missing_note(
        tools, [s for s in wanted if s not in servers]))
    _check_ports(layout, with_prometheus=checked.with_prometheus)
    return checked
