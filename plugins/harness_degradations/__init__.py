"""First-party degradations: how a training LR image is made from its HR crop."""
