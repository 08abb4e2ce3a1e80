"""creditrisk: probability that a credit-card client defaults next month, from raw data
to a monitored production endpoint."""

__version__ = "0.1.0"
