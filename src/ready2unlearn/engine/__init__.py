"""The two loops everything else calls, and what the unlearning loop drives.

- :mod:`~ready2unlearn.engine.fit`: the training loop (``fit``), with a ``regularizer`` hook for extra loss
  terms such as the Ready2Unlearn objective.
- :mod:`~ready2unlearn.engine.unlearn`: the unlearning loop (``unlearn_model``).
- :mod:`~ready2unlearn.engine.method`: the unlearning-method contract and the ``METHODS`` registry.
- :mod:`~ready2unlearn.engine.stop`: stop rules; :mod:`~ready2unlearn.engine.unlearn_config`: the run config.

Layer 4 of docs/ARCHITECTURE.md: below the methods, readiness, evaluation and the recipes that call it;
above the task protocol, data and models. Import the submodules by their full names.
"""
