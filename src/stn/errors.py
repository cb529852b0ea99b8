"""Errors meant for the user: one clear message, no traceback needed."""


class StnError(Exception):
    """Base class: the message says what is wrong and what to do."""


class DataError(StnError):
    """A data file is missing, corrupt or not MNIST-shaped, or a download failed."""


class ParamsError(StnError):
    """params.yaml (or the command line) asks for something that cannot be run."""


class DivergenceError(StnError):
    """Training produced a non-finite loss."""
