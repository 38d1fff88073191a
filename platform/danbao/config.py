"""Settings read from the environment, with the defaults a demo needs.

Everything an operator may change is here, so nothing else reads os.environ.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PACKS = (REPO_ROOT / "metadata" / "core",)


def local_tz() -> ZoneInfo:
    return ZoneInfo(os.environ.get("DANBAO_TIMEZONE", "Asia/Shanghai"))


@dataclass
class Settings:
    """What ``create_app`` needs to build one runtime."""
    instance_dir: Path
    database_url: str
    packs: tuple[Path, ...] = DEFAULT_PACKS
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))
    testing: bool = False
    # a file larger than this (MB) is refused even if the field allows more
    max_upload_mb: int = 200
    # scan warning rules on their schedule inside this process (see danbao/scheduler.py);
    # off unless asked for, so tests and CLI commands never start background jobs
    scheduler: bool = False
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, instance_dir: str | Path | None = None) -> "Settings":
        inst = Path(instance_dir or os.environ.get("DANBAO_INSTANCE", "instance")).resolve()
        url = os.environ.get("DANBAO_DATABASE_URL") or f"sqlite:///{inst / 'danbao.db'}"
        packs = os.environ.get("DANBAO_PACKS")
        pack_paths = tuple(Path(p) for p in packs.split(os.pathsep)) if packs else DEFAULT_PACKS
        return cls(instance_dir=inst, database_url=url, packs=pack_paths,
                   secret_key=_instance_secret(inst), scheduler=_flag("DANBAO_SCHEDULER", True))

    @property
    def attachments_dir(self) -> Path:
        return self.instance_dir / "attachments"

    @property
    def backups_dir(self) -> Path:
        return self.instance_dir / "backups"


def _flag(name: str, default: bool) -> bool:
    """A yes/no setting: 0/false/no/off turn it off, 1/true/yes/on on; unset or empty keeps the default."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name}={raw!r}: expected 1/0, true/false, yes/no or on/off")


def _instance_secret(instance_dir: Path) -> str:
    """A per-instance secret key, kept in the instance folder so sessions survive restarts."""
    env = os.environ.get("DANBAO_SECRET_KEY")
    if env:
        return env
    path = instance_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    path.write_text(key)
    path.chmod(0o600)
    return key
