"""Training: the loop, the optimizer built from params, memory reuse."""
