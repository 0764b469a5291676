"""Host layer: the exception tree. Users see these messages without a traceback."""


class HostError(Exception):
    """A problem the user can fix: bad config, bad file, a network that does not fit."""


class ConfigError(HostError):
    """A configuration file or option is missing a key or holds a bad value."""


class DataError(HostError):
    """A dataset or weights file is missing, unreadable or of the wrong shape."""


class TransportError(HostError):
    """The board (emulated or real) did not do what the host asked."""


class TrainingInterrupted(HostError):
    """Ctrl-C or SIGTERM during training: the message says where the checkpoint is and how to resume."""


class InternalError(Exception):
    """A bug in s2eprop itself, not in the user's input."""
