"""Attacks that test whether a deletion request was honoured."""
