"""Localizers, one module per paper, behind a small name → builder registry."""

from wtal.models import cas_baseline
from wtal.models.registry import build_model, list_models, register_model

__all__ = ["build_model", "cas_baseline", "list_models", "register_model"]
