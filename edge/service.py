"""``edge service install``: the daemon as a systemd service, for this interpreter and one config file.

The unit comes from the template shipped in the package (``edge/edge.service.in``): ``Type=notify`` with a
watchdog (:mod:`edge.systemd` speaks the protocol), ``Restart=always`` when a source is live (a camera or a
stream must come back whatever ended the process) and ``Restart=on-failure`` when every source is a file (a
replay that finished stays finished). It runs as a dedicated system user, declared the systemd way in a
sysusers.d file, with the device groups that own cameras and the GPU.
"""

from __future__ import annotations

import grp
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from edge import __version__
from edge.config import load_config
from edge.errors import EdgeError, UsageError

TEMPLATE = "edge.service.in"
ALWAYS_GROUPS = ("video",)  # /dev/video* and, on a Jetson, the GPU's device nodes
OPTIONAL_GROUPS = ("render",)  # /dev/dri/renderD*, where this machine has the group (JetPack 6)
NAME = re.compile(r"[a-z_][a-z0-9_-]{0,30}")  # what useradd and systemd accept as a user or unit name


@dataclass(frozen=True)
class Service:
    """What ``install`` writes: the unit and the sysusers.d declaration of its user."""

    name: str
    unit: str
    sysusers: str
    warnings: tuple[str, ...]

    def files(self, root: Path) -> dict[Path, str]:
        return {root / "etc/systemd/system" / f"{self.name}.service": self.unit,
                root / "etc/sysusers.d" / f"{self.name}.conf": self.sysusers}


def exec_argument(text: str) -> str:
    """One ``ExecStart=`` argument: ``%`` doubled (systemd's specifiers), quoted when it has spaces or quotes."""
    text = text.replace("%", "%%")
    if re.search(r"[\s\"'\\;]", text):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def device_groups() -> tuple[str, ...]:
    def exists(group: str) -> bool:
        try:
            grp.getgrnam(group)
        except KeyError:
            return False
        return True

    return ALWAYS_GROUPS + tuple(group for group in OPTIONAL_GROUPS if exists(group))


def unreachable(path: Path) -> Path | None:
    """The first folder above ``path`` that other users may not enter (a home folder of mode 750, as Ubuntu
    makes them), or None: the service user needs to reach the interpreter, the config and the bundles."""
    for folder in reversed(path.parents):
        try:
            if not folder.stat().st_mode & stat.S_IXOTH:
                return folder
        except OSError:
            return folder
    return None


def render(config_path: str | Path, name: str = "edge", user: str = "edge",
           python: str = sys.executable) -> Service:
    """The service for ``config_path`` (checked as ``edge run`` would, so a bad config fails here, exit 2)."""
    for what, value in (("--name", name), ("--user", user)):
        if not NAME.fullmatch(value):
            raise UsageError(f"{what} {value!r}: use lowercase letters, digits, '-' and '_' (at most 31)")
    config_path = Path(config_path).absolute()
    config = load_config(config_path)
    from streams.uris import is_live

    live = [source.url for source in config.sources if is_live(source.url)]
    restart, why = (("always", f"a live source ({live[0]}) must come back whatever ended the process") if live
                    else ("on-failure", "every source is a file: a finished replay is not started again"))
    groups = device_groups()
    unit = Template(resources.files("edge").joinpath(TEMPLATE).read_text()).substitute(
        unit=f"{name}.service", version=__version__, config=config_path, restart=restart, restart_why=why,
        exec_start=" ".join(exec_argument(arg) for arg in (python, "-m", "edge", "run", "--config", str(config_path))),
        user=user, groups=" ".join(groups), name=name)
    sysusers = (f"# {name}: the user of {name}.service (written by edge service install)\n"
                f'u {user} - "edge computer-vision daemon" /var/lib/{name} -\n'
                + "".join(f"m {user} {group}\n" for group in groups))
    analytics = [config.analytics] if isinstance(config.analytics, str) else []
    relative = [p for p in [*config.bundles, *(s.url for s in config.sources if not is_live(s.url)), *analytics]
                if not Path(p).is_absolute()]
    paths = [Path(python), config_path, *(Path(b).absolute() for b in config.bundles)]
    warnings = tuple([f"{p}: a relative path, which the service reads from /var/lib/{name}" for p in relative]
                     + [f"user {user} may not reach {path}: {folder} is closed to other users"
                        for path in paths if (folder := unreachable(path)) is not None])
    return Service(name, unit, sysusers, warnings)


def install(service: Service, root: Path = Path("/")) -> list[Path]:
    """Writes the unit and the sysusers.d file under ``root``; on the running system (``root`` is ``/``) also
    creates the user and reloads systemd. Returns the files written."""
    live_system = root.resolve() == Path("/")
    if live_system and os.geteuid() != 0:
        raise UsageError("edge service install: needs root (run it with sudo); --dry-run prints the unit")
    written = []
    for path, text in service.files(root).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    sysusers = ["systemd-sysusers", *([] if live_system else [f"--root={root}"]), str(written[1])]
    commands = [sysusers, ["systemctl", "daemon-reload"]] if live_system else [sysusers]
    for command in commands:
        if shutil.which(command[0]) is None:
            raise EdgeError(f"{command[0]}: not found (is this a systemd system?); the unit is in {written[0]}")
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            raise EdgeError(f"{' '.join(command)}: failed ({last}); the unit is in {written[0]}")
    return written
