"""Keras 3 layers of reseg_tf (`keras.ops` only, backend-agnostic)."""

from reseg_tf.keras.renet2d import ReNet2D, set_weights_from_renet_layer

__all__ = ["ReNet2D", "set_weights_from_renet_layer"]

