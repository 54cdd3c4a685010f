"""The test bed's fake Slack Web API: the playground's Slack stand-in (product code), under the name tests use."""

from __future__ import annotations

from commands.playground.standin import Call, Fault, SlackStandIn

FakeSlack = SlackStandIn

__all__ = ["Call", "FakeSlack", "Fault"]
