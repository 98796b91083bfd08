"""Which provider a client uses when none is named: ``LLM_PROVIDER``, else the key that is set.

The order below decides when several providers' keys are set. OpenRouter
comes first because it was the only default before detection existed: a
setup that worked then (it had ``OPENROUTER_API_KEY``) picks the same
provider now, whatever other keys it also holds. Then the direct APIs, most
common first; AWS credentials last, since they are often set for other
services. ``LLM_PROVIDER`` (or ``provider=``) settles any doubt.

Each row names a kind and the variables that configure it: any one of the
groups, every variable of a group set and not empty. A kind this
installation does not have (``PROVIDER_KINDS``) is skipped, so a row can be
listed before its provider lands.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping

from ..errors import ConfigurationError

__all__ = ["DETECTION_ORDER", "detect_provider"]

_log = logging.getLogger("aio_llm.providers")

DETECTION_ORDER: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = (
    ("openrouter", (("OPENROUTER_API_KEY",),)),
    ("openai", (("OPENAI_API_KEY",),)),
    ("anthropic", (("ANTHROPIC_API_KEY",),)),
    ("gemini", (("GEMINI_API_KEY",), ("GOOGLE_API_KEY",))),
    (
        "azure-openai",
        (
            ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT"),
            ("AZURE_OPENAI_AD_TOKEN", "AZURE_OPENAI_ENDPOINT"),
        ),
    ),
    ("bedrock", (("AWS_BEARER_TOKEN_BEDROCK",), ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))),
)
"""(kind, groups of variables), first match wins."""


def _configured(env: Mapping[str, str], groups: tuple[tuple[str, ...], ...]) -> bool:
    return any(all((env.get(name) or "").strip() for name in group) for group in groups)


def detect_provider(
    environ: Mapping[str, str] | None = None, *, kinds: Collection[str] | None = None
) -> str:
    """The provider kind to use when none is named (see the module docstring).

    ``LLM_PROVIDER`` is read by ``ClientConfig``; this looks at the keys.
    ``ConfigurationError`` names every choice when no provider is configured.
    """
    env = os.environ if environ is None else environ
    if kinds is None:
        from . import PROVIDER_KINDS

        kinds = frozenset(PROVIDER_KINDS)  # the names only: loads no provider module
    rows = [(kind, groups) for kind, groups in DETECTION_ORDER if kind in kinds]
    found = [kind for kind, groups in rows if _configured(env, groups)]
    if found:
        if len(found) > 1:
            _log.info(
                "provider %r chosen (keys for %s are set; LLM_PROVIDER picks another)",
                found[0],
                ", ".join(found),
            )
        return found[0]
    variables = ", ".join(" + ".join(groups[0]) for _, groups in rows)
    raise ConfigurationError(
        "no provider configured: set LLM_PROVIDER (one of "
        f"{', '.join(sorted(kinds))}) or the API key of one: {variables}; "
        "or pass provider= and api_key= (LLM_FORCE_MOCK=1 answers offline)"
    )
