"""CIFAR-10 loading, the validation split, and on-device augmentation."""
