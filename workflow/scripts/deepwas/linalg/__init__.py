"""Krylov and Nystrom building blocks of the iterative likelihood and the Fig. 2 baselines (paper Sec. 4.2)."""
