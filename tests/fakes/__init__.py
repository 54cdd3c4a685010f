"""Stand-ins for Slack in tests: a loopback Web API server and a player that sends signed Slack requests."""
