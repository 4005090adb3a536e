"""hpsearch: parallel Bayesian searches for how many bits a neural network stores."""

__version__ = "0.1.0"
