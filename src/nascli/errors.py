"""The errors a user can fix: shown as one line with exit code 2, never as a traceback."""

from __future__ import annotations


class UserError(RuntimeError):
    """An error the user can fix (a bad value, a missing file); shown as one line."""


def user_error_types() -> tuple[type[BaseException], ...]:
    """Every exception type that means "the user's input is wrong"."""
    from nascli.config import ConfigError
    from nascli.data import DatasetError
    from nascli.registry import UnknownNameError
    from nascli.spaces import SpaceError
    from nascli.strategies import StrategyError
    from nascli.training.device import DeviceError

    return (ConfigError, SpaceError, DatasetError, DeviceError, StrategyError, UnknownNameError,
            UserError)
