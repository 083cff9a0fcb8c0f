"""Recipes: one explicit loop per arrow of the data flow (train, unlearn, evaluate, bench)."""
