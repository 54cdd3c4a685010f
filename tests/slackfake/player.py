"""The test bed's Slack player: the playground's signed deliveries (product code), re-exported for the tests."""

from __future__ import annotations

from commands.playground.player import SlackPlayer

__all__ = ["SlackPlayer"]
