"""Build the gateway the way `402claw serve` runs it, from settings and the environment."""

from __future__ import annotations

from claw402.config import Settings
from claw402.gateway.app import Gateway, create_app


def build_app(settings: Settings) -> Gateway:
    return create_app(settings)
