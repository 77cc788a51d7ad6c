"""Localizers, one module per paper, behind a small name → builder registry."""

from wtal.models import assg as assg
from wtal.models import cas_baseline
from wtal.models import cpmn as cpmn
from wtal.models import ecm as ecm
from wtal.models import kt_mgfn as kt_mgfn
from wtal.models import tsrnet as tsrnet
from wtal.models.registry import build_model, builder_parameters, list_models, register_model

__all__ = [
    "assg",
    "build_model",
    "builder_parameters",
    "cas_baseline",
    "cpmn",
    "ecm",
    "kt_mgfn",
    "list_models",
    "register_model",
    "tsrnet",
]
