"""sao: fully self-synthetic preference data from one instruct model."""

__version__ = "0.1.0"
