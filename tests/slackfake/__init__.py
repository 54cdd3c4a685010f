"""Loopback stand-ins for Slack: its Web API and its signed deliveries to the app."""
