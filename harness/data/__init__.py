"""Data: the tf.data training pipeline, image and video I/O, and downloads (data sets, weights)."""
