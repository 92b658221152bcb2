"""Builds the provider clients from settings; the app keeps them in `app.extensions["providers"]`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.config import Settings


@dataclass
class Providers:
    instagift: Any
    cardly: Any
    instantcard: Any


def build_providers(settings: Settings) -> Providers:
    """One client per provider, pointed at the live API or the sandbox as the settings say."""
    instagift = cardly = instantcard = None
    from service.providers.instagift import InstagiftClient
    instagift = InstagiftClient.from_settings(settings.instagift)
    from service.providers.instantcard import DatabaseTokenStore, InstantCardClient
    instantcard = InstantCardClient(settings.instantcard, token_store=DatabaseTokenStore(settings.instantcard.email))
    from service.providers.cardly import CardlyClient
    cardly = CardlyClient.from_settings(settings.cardly)
    return Providers(instagift=instagift, cardly=cardly, instantcard=instantcard)
