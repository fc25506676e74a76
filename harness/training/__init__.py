"""Training: the GAN step (models, optimizers, weighted terms), the loop, what happens around it
(validation, samples, checkpoints, tracking, progress), precision, schedules, distribution.
"""
