"""Where Bedrock's AWS credentials come from.

In order: credentials passed in; the environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``); then, when botocore is
installed (``pip install 'aio-llm[bedrock]'``), its full chain: shared
config and credentials files and profiles (``AWS_PROFILE``), SSO, web
identity, container and instance metadata, ``credential_process``, with
refresh of temporary credentials. botocore is imported only then, so a user
who never touches Bedrock pays nothing for it. Its blocking calls (a refresh
may go to the network) run in a worker thread.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any, Protocol

import anyio

from ..errors import ConfigurationError
from ._sigv4 import AWSCredentials

__all__ = [
    "BotocoreCredentials",
    "CredentialSource",
    "StaticCredentials",
    "botocore_available",
    "credentials_from_env",
]

_RELOAD_EVERY = 60.0
"""Seconds between reads of botocore's credentials.

botocore refreshes temporary credentials from 15 minutes before they
expire; reading its frozen credentials once a minute (in a thread) keeps
ours at least ~14 minutes from expiry without a thread hop per request.
"""


class CredentialSource(Protocol):
    """Supplies the credentials to sign with; ``current`` never blocks."""

    @property
    def current(self) -> AWSCredentials | None:
        """The credentials to use now (``None``: ``refresh`` first)."""
        ...

    def needs_refresh(self, now: float) -> bool:
        """True when ``refresh`` must run before signing at ``now`` (epoch seconds)."""
        ...

    async def refresh(self, now: float) -> None:
        """Load fresh credentials at ``now``; ``ConfigurationError`` when there are none."""
        ...


class StaticCredentials:
    """Fixed credentials (given, or read from the environment)."""

    __slots__ = ("current",)

    def __init__(self, credentials: AWSCredentials) -> None:
        self.current: AWSCredentials | None = credentials

    def needs_refresh(self, now: float) -> bool:
        return False

    async def refresh(self, now: float) -> None:
        return None

    def __repr__(self) -> str:
        return f"StaticCredentials({self.current!r})"


def botocore_available() -> bool:
    """True when botocore can be imported (checked without importing it)."""
    return importlib.util.find_spec("botocore") is not None


class BotocoreCredentials:
    """botocore's credential chain, refreshed in a worker thread when needed."""

    __slots__ = ("_creds", "_loaded_at", "_profile", "current")

    def __init__(self, profile: str | None = None) -> None:
        self._profile = profile
        self._creds: Any = None
        self._loaded_at = 0.0
        self.current: AWSCredentials | None = None

    def needs_refresh(self, now: float) -> bool:
        return self.current is None or now - self._loaded_at >= _RELOAD_EVERY

    async def refresh(self, now: float) -> None:
        self.current = await anyio.to_thread.run_sync(self._load)
        self._loaded_at = now

    def _load(self) -> AWSCredentials:
        if self._creds is None:
            try:
                import botocore.session
            except ImportError:  # pragma: no cover - checked before choosing this source
                raise ConfigurationError(
                    "no AWS credentials in the environment; install 'aio-llm[bedrock]' to "
                    "read profiles, SSO and instance roles"
                ) from None
            session = botocore.session.Session(profile=self._profile)
            self._creds = session.get_credentials()
            if self._creds is None:
                raise ConfigurationError(
                    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                    "AWS_BEARER_TOKEN_BEDROCK, or configure a profile"
                )
        frozen = self._creds.get_frozen_credentials()  # refreshes when close to expiry
        return AWSCredentials(frozen.access_key, frozen.secret_key, frozen.token)

    def __repr__(self) -> str:
        return f"BotocoreCredentials(profile={self._profile!r})"


def credentials_from_env(env: Mapping[str, str]) -> AWSCredentials | None:
    """``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (+ ``AWS_SESSION_TOKEN``), if set."""
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return None
    return AWSCredentials(key, secret, env.get("AWS_SESSION_TOKEN") or None)
