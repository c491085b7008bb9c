"""Errors a user reads, shared by the library and the command line (which imports this early)."""


class ArchiveError(Exception):
    """The archive cannot be opened or written at all; `str()` names the file and the reason."""


class ParseError(Exception):
    """A response that cannot be read as what the source expects; the message says where."""
