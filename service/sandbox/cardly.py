"""Sandbox cardly (placeholder until its issue lands)."""

from flask import Blueprint


class _State:
    def reset(self) -> None:
        """Forget everything and reseed the demo data."""


def create_blueprint() -> Blueprint:
    """The fake cardly API as a blueprint; its state lives on `blueprint.state`."""
    blueprint = Blueprint("sandbox_cardly", __name__)
    blueprint.state = _State()
    return blueprint
