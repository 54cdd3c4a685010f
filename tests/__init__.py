"""expbot tests: everything runs on loopback against real servers and a real SQLite file."""
