"""expbot's core: configuration, storage, approval workflow and Slack rendering."""
