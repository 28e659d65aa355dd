"""Neural networks NN_theta for the DeepWAS prior (Eqn 6): f = (p(1-p))^alpha * exp(NN_theta(C_func, C_pred))."""
from .enformer import SIZES, EnformerNN, count_parameters, relative_position_basis

__all__ = ["SIZES", "EnformerNN", "count_parameters", "relative_position_basis"]
