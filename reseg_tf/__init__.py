"""reseg-tf: ReSeg recurrent semantic segmentation in TensorFlow 2."""
