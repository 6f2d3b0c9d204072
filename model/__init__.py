"""Networks and the parameter budget."""

from model.registry import (PARAMETER_CAP, REGISTRY, BudgetError, ModelSpec, UnknownModelError, build_model,
                            check_budget, get_spec, parameter_count)

__all__ = ["PARAMETER_CAP", "REGISTRY", "BudgetError", "ModelSpec", "UnknownModelError", "build_model",
           "check_budget", "get_spec", "parameter_count"]
