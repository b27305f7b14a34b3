"""Distillation from the frozen base: a KL term that holds the fine-tuned model's token distributions near the
base's on the same batch (learning without forgetting). It also holds the model to the base's answers on the
domain: on FSDD, where those are wrong, it cost the domain (README, "Which recipe")."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

from whisper_assets.training.data import IGNORED_LABEL
from whisper_assets.training.model import restore_encoder_window


class FrozenTeacher:
    """A frozen copy of the base, taken at the student's encoder window, that scores the student's batches."""

    def __init__(self, base: WhisperForConditionalGeneration, full_window: torch.nn.Embedding | None):
        self.model = copy.deepcopy(base).requires_grad_(False).eval()
        self._full_window = copy.deepcopy(full_window)

    def to(self, device: torch.device) -> FrozenTeacher:
        self.model.to(device)
        return self

    def restore_window(self, feature_extractor: WhisperFeatureExtractor) -> None:
        """Follow the student to the full 30 s window."""
        if self._full_window is not None:
            restore_encoder_window(self.model, feature_extractor, self._full_window)
            self._full_window = None

    @torch.no_grad()
    def logits(self, input_features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.model(input_features=input_features, labels=labels).logits


def kl_to_teacher(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """KL(teacher || student) per label token (padding left out), averaged over the batch's tokens."""
    kept = labels != IGNORED_LABEL
    student = F.log_softmax(student_logits[kept].float(), dim=-1)
    teacher = F.log_softmax(teacher_logits[kept].float(), dim=-1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean")
