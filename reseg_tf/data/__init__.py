"""Records, augmentation, the input pipeline and the feature cache."""
