"""Builds the provider clients from settings; the app keeps them in `app.extensions["providers"]`."""

from __future__ import annotations

from dataclasses import dataclass

from service.config import Settings
from service.providers.cardly import CardlyClient
from service.providers.instagift import InstagiftClient
from service.providers.instantcard import InstantCardClient
from service.providers.tokens import DatabaseTokenStore


@dataclass
class Providers:
    instagift: InstagiftClient
    cardly: CardlyClient
    instantcard: InstantCardClient


def build_providers(settings: Settings) -> Providers:
    """One client per provider, pointed at the live API or the sandbox as the settings say."""
    return Providers(
        instagift=InstagiftClient.from_settings(settings.instagift),
        cardly=CardlyClient.from_settings(settings.cardly),
        # The InstantCard token is cached in the database, so every process shares one login.
        instantcard=InstantCardClient(settings.instantcard,
                                      token_store=DatabaseTokenStore(settings.instantcard.email)),
    )
