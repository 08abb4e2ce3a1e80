"""Errors a user can act on. The CLI and the pipeline steps print their message, never a
traceback, and exit non-zero."""

from __future__ import annotations


class CreditRiskError(Exception):
    """Base class: an error whose message tells the user what is wrong and what to do."""


class DataError(CreditRiskError):
    """A data file cannot be read, downloaded or does not follow the contract."""


class ConfigError(CreditRiskError):
    """A training or serving configuration is invalid."""


class RegistryError(CreditRiskError):
    """The model registry cannot be reached or does not hold what was asked for."""
