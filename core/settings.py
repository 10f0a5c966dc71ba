"""Settings read from JOBYARD_* environment variables, in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core import crypto, defaults


class SettingsError(ValueError):
    """An environment variable holds a value Jobyard cannot use."""


def _dirs(env: Mapping[str, str], name: str) -> tuple[Path, ...]:
    # os.pathsep-separated like PATH (":" on POSIX): a comma is a legal character of a directory name.
    return tuple(Path(d.strip()) for d in env.get(name, "").split(os.pathsep) if d.strip())


# What a path parameter does on the worker's disk, and so which directories bound it (jobs/paths.py).
ServerPath = Literal["import", "export"]


@dataclass(frozen=True)
class ServerDirs:
    """The directories path parameters are confined to: files are read only inside `imports` and created only
    inside `exports`. Empty allows nothing."""

    imports: tuple[Path, ...] = ()
    exports: tuple[Path, ...] = ()

    def of(self, kind: ServerPath) -> tuple[Path, ...]:
        return self.imports if kind == "import" else self.exports


def _float(env: Mapping[str, str], name: str, default: float, *, zero_ok: bool = False) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0 or (value == 0 and not zero_ok):
        raise SettingsError(f"{name} must be {'zero or more' if zero_ok else 'positive'}, got {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(defaults.DATA_DIR)
    # None means: the embedded SQLite file under data_dir.
    database_url: str | None = None
    # None means: the embedded Redis server Jobyard starts under data_dir.
    redis_url: str | None = None
    secret_key: str = ""
    job_modules: tuple[str, ...] = ()
    worker_heartbeat_interval_s: float = defaults.WORKER_HEARTBEAT_INTERVAL_S
    worker_dead_after_s: float = defaults.WORKER_DEAD_AFTER_S
    reconcile_interval_s: float = defaults.RECONCILE_INTERVAL_S
    reconcile_grace_s: float = defaults.RECONCILE_GRACE_S
    sqlite_synchronous: str = "NORMAL"
    log_level: str = "INFO"
    schedule_misfire_grace_s: float = defaults.SCHEDULE_MISFIRE_GRACE_S
    cancel_grace_s: float = defaults.CANCEL_GRACE_S
    smtp_url: str | None = None
    mail_from: str = defaults.MAIL_FROM
    base_url: str = defaults.BASE_URL
    session_idle_timeout_s: float = defaults.SESSION_IDLE_TIMEOUT_S
    # Fernet keys, newest first (core/crypto.py); the key derived from secret_key always follows them.
    vault_keys: tuple[str, ...] = ()
    # The only directories whose files a job reads by a path parameter (jobs/paths.py); a relative path
    # parameter is taken from the first. Empty means: data_dir / defaults.IMPORT_DIRNAME.
    import_dirs: tuple[Path, ...] = ()
    # The only directories where a job creates a file named by a path parameter (archives); a relative path
    # parameter is taken from the first. Empty means: data_dir / defaults.EXPORT_DIRNAME. Jobs read files by path
    # only from import_dirs, which include these only when listed there too.
    export_dirs: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        try:
            crypto.parse_vault_keys(",".join(self.vault_keys))
        except crypto.BadVaultKey as exc:
            raise SettingsError(f"JOBYARD_VAULT_KEYS: {exc}") from None
        # Code that holds only an engine (vault, audit trail) or only the secret key (sealed parameters)
        # finds the rest of the installation's keys through these.
        crypto.register_vault_keys(self.secret_key, self.vault_keys)
        crypto.register_installation(self.resolved_database_url, self.secret_key)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        modules = tuple(m.strip() for m in env.get("JOBYARD_JOB_MODULES", "").split(",") if m.strip())
        synchronous = env.get("JOBYARD_SQLITE_SYNCHRONOUS", "NORMAL").upper()
        if synchronous not in {"NORMAL", "FULL", "EXTRA"}:
            raise SettingsError(f"JOBYARD_SQLITE_SYNCHRONOUS must be NORMAL, FULL or EXTRA, got {synchronous!r}")
        log_level = env.get("JOBYARD_LOG_LEVEL", "INFO").upper()
        if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise SettingsError(f"JOBYARD_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
        return cls(
            vault_keys=tuple(k.strip() for k in env.get("JOBYARD_VAULT_KEYS", "").split(",") if k.strip()),
            log_level=log_level,
            data_dir=Path(env.get("JOBYARD_DATA_DIR") or defaults.DATA_DIR),
            database_url=env.get("JOBYARD_DATABASE_URL") or None,
            redis_url=env.get("JOBYARD_REDIS_URL") or None,
            secret_key=env.get("JOBYARD_SECRET_KEY", ""),
            job_modules=modules,
            worker_heartbeat_interval_s=_float(
                env, "JOBYARD_WORKER_HEARTBEAT_INTERVAL_S", defaults.WORKER_HEARTBEAT_INTERVAL_S
            ),
            worker_dead_after_s=_float(env, "JOBYARD_WORKER_DEAD_AFTER_S", defaults.WORKER_DEAD_AFTER_S),
            reconcile_interval_s=_float(env, "JOBYARD_RECONCILE_INTERVAL_S", defaults.RECONCILE_INTERVAL_S),
            reconcile_grace_s=_float(env, "JOBYARD_RECONCILE_GRACE_S", defaults.RECONCILE_GRACE_S, zero_ok=True),
            sqlite_synchronous=synchronous,
            smtp_url=env.get("JOBYARD_SMTP_URL") or None,
            mail_from=env.get("JOBYARD_MAIL_FROM") or defaults.MAIL_FROM,
            base_url=(env.get("JOBYARD_BASE_URL") or defaults.BASE_URL).rstrip("/"),
            cancel_grace_s=_float(env, "JOBYARD_CANCEL_GRACE_S", defaults.CANCEL_GRACE_S),
            schedule_misfire_grace_s=_float(
                env, "JOBYARD_SCHEDULE_MISFIRE_GRACE_S", defaults.SCHEDULE_MISFIRE_GRACE_S, zero_ok=True
            ),
            session_idle_timeout_s=_float(env, "JOBYARD_SESSION_IDLE_TIMEOUT_S", defaults.SESSION_IDLE_TIMEOUT_S),
            import_dirs=_dirs(env, "JOBYARD_IMPORT_DIRS"),
            export_dirs=_dirs(env, "JOBYARD_EXPORT_DIRS"),
        )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / defaults.SQLITE_FILENAME).resolve()}"

    @property
    def allowed_import_dirs(self) -> tuple[Path, ...]:
        return self.import_dirs or (self.data_dir / defaults.IMPORT_DIRNAME,)

    @property
    def allowed_export_dirs(self) -> tuple[Path, ...]:
        return self.export_dirs or (self.data_dir / defaults.EXPORT_DIRNAME,)

    @property
    def server_dirs(self) -> ServerDirs:
        return ServerDirs(self.allowed_import_dirs, self.allowed_export_dirs)

    def as_env(self) -> dict[str, str]:
        """The environment a child process needs to rebuild these exact settings."""
        env = {
            "JOBYARD_DATA_DIR": str(self.data_dir),
            "JOBYARD_DATABASE_URL": self.resolved_database_url,
            "JOBYARD_SECRET_KEY": self.secret_key,
            "JOBYARD_JOB_MODULES": ",".join(self.job_modules),
            "JOBYARD_WORKER_HEARTBEAT_INTERVAL_S": str(self.worker_heartbeat_interval_s),
            "JOBYARD_WORKER_DEAD_AFTER_S": str(self.worker_dead_after_s),
            "JOBYARD_RECONCILE_INTERVAL_S": str(self.reconcile_interval_s),
            "JOBYARD_RECONCILE_GRACE_S": str(self.reconcile_grace_s),
            "JOBYARD_SQLITE_SYNCHRONOUS": self.sqlite_synchronous,
            "JOBYARD_LOG_LEVEL": self.log_level,
            "JOBYARD_SCHEDULE_MISFIRE_GRACE_S": str(self.schedule_misfire_grace_s),
            "JOBYARD_CANCEL_GRACE_S": str(self.cancel_grace_s),
            "JOBYARD_MAIL_FROM": self.mail_from,
            "JOBYARD_BASE_URL": self.base_url,
            "JOBYARD_SESSION_IDLE_TIMEOUT_S": str(self.session_idle_timeout_s),
            "JOBYARD_VAULT_KEYS": ",".join(self.vault_keys),
            "JOBYARD_IMPORT_DIRS": os.pathsep.join(str(d) for d in self.import_dirs),
            "JOBYARD_EXPORT_DIRS": os.pathsep.join(str(d) for d in self.export_dirs),
        }
        if self.redis_url:
            env["JOBYARD_REDIS_URL"] = self.redis_url
        if self.smtp_url:
            env["JOBYARD_SMTP_URL"] = self.smtp_url
        return env
