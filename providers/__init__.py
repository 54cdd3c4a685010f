"""Experiment platforms expbot can drive, behind one `Provider` protocol."""
