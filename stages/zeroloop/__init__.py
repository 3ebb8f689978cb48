"""zeroloop: KataGo-style self-play training of Go nets, in Python."""

__version__ = "0.1.0"
