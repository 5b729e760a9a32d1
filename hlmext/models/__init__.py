"""The model floor: linear and generalized mixed models, their gradients and the optimizer."""
