"""critmine: mine verbal data-quality criteria from a few human-labelled pairs."""

__version__ = "0.1.0"
