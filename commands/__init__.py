"""Slack-facing listeners and the `expbot` command line; `register` hooks the listeners onto a Bolt app."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `expbot` imports this package before it turns the collector off (commands/cli.py): keep it light
    from slack_bolt.async_app import AsyncApp

    from bot.workflow import Workflow


def register(app: AsyncApp, workflow: Workflow) -> None:
    """Attach every listener expbot answers to."""
    from commands import actions, home, modals, slash

    slash.register(app, workflow)
    actions.register(app, workflow)
    modals.register(app, workflow)
    home.register(app, workflow)
