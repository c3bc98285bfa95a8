"""402claw: deploy your data, get a paid API. One command."""

__version__ = "0.1.0"
