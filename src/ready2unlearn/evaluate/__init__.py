"""Evaluation: predictions, accuracy and loss over in-memory datasets."""

from ready2unlearn.task import accuracy_and_loss, predict_logits

__all__ = ["accuracy_and_loss", "predict_logits"]
