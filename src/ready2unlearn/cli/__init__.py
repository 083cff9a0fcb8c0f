"""The ``r2u`` command line: one module per verb."""
