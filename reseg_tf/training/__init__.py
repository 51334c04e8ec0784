"""The trainer, its train step, losses, optimizers and distribution."""
