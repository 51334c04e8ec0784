"""Optimisers the trainer can be configured with (docs/protocol.md).

The default is the paper's Adadelta: learning rate 1.0, rho 0.95 and epsilon
1e-6 (Keras' defaults are 0.001, 0.95 and 1e-7, which train far slower).
"""

import keras

OPTIMIZERS = ("adadelta", "adam", "adamw")


def make_optimizer(name: str = "adadelta", learning_rate: float = 1.0,
                   rho: float = 0.95, epsilon: float = 1e-6,
                   beta_1: float = 0.9, beta_2: float = 0.999,
                   weight_decay: float = 0.004) -> keras.optimizers.Optimizer:
  """A Keras 3 optimizer.

  Args:
    name: "adadelta" (paper), "adam" or "adamw".
    learning_rate: step size (the paper's Adadelta: 1.0; use ~1e-3 for Adam).
    rho: Adadelta's decay.
    epsilon: numerical stabiliser (paper: 1e-6).
    beta_1: Adam's first-moment decay.
    beta_2: Adam's second-moment decay.
    weight_decay: AdamW's decoupled decay (the trainer's L2 penalty is
      separate and works with every optimizer).

  Create it under the strategy's scope: Keras 3 optimizers then all-reduce
  the gradients themselves when applied in replica context.
  """
  if name == "adadelta":
    return keras.optimizers.Adadelta(learning_rate=learning_rate, rho=rho, epsilon=epsilon)
  if name == "adam":
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1,
                                 beta_2=beta_2, epsilon=epsilon)
  if name == "adamw":
    return keras.optimizers.AdamW(learning_rate=learning_rate, beta_1=beta_1,
                                  beta_2=beta_2, epsilon=epsilon,
                                  weight_decay=weight_decay)
  raise ValueError(f"optimizer {name!r} is not one of {OPTIMIZERS}")
