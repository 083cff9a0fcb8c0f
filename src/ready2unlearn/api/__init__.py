"""The Python API: :func:`unlearn`, :func:`evaluate`, :func:`retrain`, and :func:`plan` to choose a strategy.

Each takes any ``nn.Module`` classifier and an :class:`~ready2unlearn.data.ArrayDataset` or a Hugging Face
``datasets.Dataset``, and a deletion request as a :class:`~ready2unlearn.data.DeletionRequest`, a spec string
(``"class:3"``) or sample ids. They run the same recipes as the ``r2u`` command line.
"""

from ready2unlearn.api.evaluation import evaluate
from ready2unlearn.api.hf_datasets import from_hf_dataset
from ready2unlearn.api.inputs import as_array_dataset, as_request
from ready2unlearn.api.planning import plan
from ready2unlearn.api.retraining import retrain
from ready2unlearn.api.unlearning import unlearn, unlearn_config

__all__ = [
    "as_array_dataset",
    "as_request",
    "evaluate",
    "from_hf_dataset",
    "plan",
    "retrain",
    "unlearn",
    "unlearn_config",
]
