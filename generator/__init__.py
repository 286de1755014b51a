"""Butterfly: a static tutorial-site generator that shows how adversarial examples fool a CNN."""

__version__ = "0.1.0"
