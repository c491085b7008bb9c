"""Errors a user reads, shared by the library and the command line (which imports this early)."""


class ArchiveError(Exception):
    """The archive cannot be opened or written at all; `str()` names the file and the reason."""


class ParseError(Exception):
    """A response that cannot be read as what the source expects; the message says where."""


class SetupError(Exception):
    """A setting that cannot be put to use on this machine (a port already taken); `str()`
    names the key."""


def archive_open_error(path: str, error: Exception) -> ArchiveError:
    """Why `path` could not be opened, in the words of the fix rather than SQLite's."""
    import os
    from pathlib import Path

    where = Path(path).resolve().parent
    if not Path(path).exists() and where.is_dir() and not os.access(where, os.W_OK | os.X_OK):
        return ArchiveError(
            f"cannot make the archive {path}: the directory {where} is not writable here"
        )
    if Path(path).exists() and not os.access(path, os.R_OK | os.W_OK):
        return ArchiveError(f"cannot open the archive {path}: the file is not writable here")
    return ArchiveError(f"cannot open the archive {path}: {error}")
