"""Every setting weightsafe takes from the environment, read once into one value object.

The hub's own variables (``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_TOKEN_PATH``, ``HF_HOME``,
``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``, ``HF_HUB_DISABLE_PROGRESS_BARS``) mean here what they mean to
``huggingface_hub``, resolved the same way, so one environment drives both tools. A value that
cannot be understood is a usage error naming the variable, never a silent default: a pipeline
that sets ``WEIGHTSAFE_RETRIES=abc`` wants to hear about it.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import platformdirs

from .errors import UsageError

DEFAULT_ENDPOINT = "https://huggingface.co"
TRUE_VALUES = {"1", "true", "yes", "on"}
FALSE_VALUES = {"", "0", "false", "no", "off"}


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "")
    value = raw.strip().lower()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise UsageError(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def _number(env: Mapping[str, str], name: str, default: float, integer: bool = False) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise UsageError(f"{name}={raw!r} is not {kind}") from None
    if value < 0 or value != value:  # NaN
        raise UsageError(f"{name}={raw!r} must not be negative")
    return value


def check_endpoint(endpoint: str, where: str = "endpoint", object_storage: bool = True) -> str:
    """An http(s) hub or mirror URL, or (``object_storage``) ``s3://bucket[/prefix]``."""
    parsed = urllib.parse.urlsplit(endpoint)
    if object_storage and parsed.scheme == "s3":
        if not parsed.netloc or parsed.query or parsed.fragment:
            raise UsageError(f"{where} {endpoint!r} is not s3://bucket[/prefix]")
        return endpoint.rstrip("/")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        kinds = "an http(s) URL or s3://bucket[/prefix]" if object_storage else "an http(s) URL"
        raise UsageError(f"{where} {endpoint!r} is not {kinds}")
    return endpoint.rstrip("/")


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    return Path(os.path.expandvars(raw)).expanduser() if raw else None


@dataclass(frozen=True)
class Settings:
    """What the environment says; the CLI's and the API's explicit arguments win over it."""

    endpoint: str = DEFAULT_ENDPOINT
    token: str | None = None
    offline: bool = False
    cache_root: Path = field(default_factory=lambda: Path(platformdirs.user_cache_dir("weightsafe")))
    hf_home: Path = Path("~/.cache/huggingface").expanduser()
    hf_hub_cache: Path = Path("~/.cache/huggingface/hub").expanduser()
    manifest_dirs: tuple[Path, ...] = ()
    read_timeout: float = 30.0
    retries: int = 5
    backoff: float = 0.5
    min_speed: float = 1024.0
    min_speed_window: float = 30.0
    progress_bars: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        hf_home = _path(env, "HF_HOME") or (
            (_path(env, "XDG_CACHE_HOME") or Path("~/.cache").expanduser()) / "huggingface")
        hub_cache = _path(env, "HF_HUB_CACHE") or _path(env, "HUGGINGFACE_HUB_CACHE") or hf_home / "hub"
        token_path = _path(env, "HF_TOKEN_PATH") or hf_home / "token"
        endpoint = check_endpoint(env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT, "HF_ENDPOINT")
        user_manifests = Path(platformdirs.user_config_dir("weightsafe")) / "manifests"
        if env.get("XDG_CONFIG_HOME"):
            user_manifests = Path(env["XDG_CONFIG_HOME"]) / "weightsafe" / "manifests"
        extra = tuple(Path(p).expanduser() for p in env.get("WEIGHTSAFE_MANIFEST_PATH", "").split(os.pathsep) if p)
        return cls(
            endpoint=endpoint,
            token=(env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or _read_token(token_path)),
            offline=_flag(env, "HF_HUB_OFFLINE"),
            cache_root=_path(env, "WEIGHTSAFE_CACHE") or Path(platformdirs.user_cache_dir("weightsafe")),
            hf_home=hf_home,
            hf_hub_cache=hub_cache,
            manifest_dirs=extra + (user_manifests,),
            read_timeout=_number(env, "WEIGHTSAFE_READ_TIMEOUT", 30.0) or 30.0,
            retries=int(_number(env, "WEIGHTSAFE_RETRIES", 5, integer=True)),
            backoff=_number(env, "WEIGHTSAFE_BACKOFF", 0.5),
            min_speed=_number(env, "WEIGHTSAFE_MIN_SPEED", 1024.0),
            min_speed_window=_number(env, "WEIGHTSAFE_MIN_SPEED_WINDOW", 30.0) or 30.0,
            progress_bars=not _flag(env, "HF_HUB_DISABLE_PROGRESS_BARS"),
        )

    def with_overrides(self, *, endpoint: str | None = None, cache_dir: str | os.PathLike | None = None,
                       offline: bool | None = None) -> "Settings":
        """These settings with the caller's explicit choices applied (None keeps the environment's)."""
        changes: dict = {}
        if endpoint:
            changes["endpoint"] = check_endpoint(endpoint)
        if cache_dir:
            changes["cache_root"] = Path(cache_dir).expanduser()
        if offline:
            changes["offline"] = True
        return replace(self, **changes)


def _read_token(path: Path) -> str | None:
    """The token ``hf auth login`` stored; an unreadable file is no token, not a failure."""
    try:
        token = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return token or None


__all__ = ["Settings", "DEFAULT_ENDPOINT", "check_endpoint"]
