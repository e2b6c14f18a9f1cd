"""The one application error class: commands turn it into CommandError, the API into a 4xx response."""


class ErrorMapError(Exception):
    """A problem the user can fix (bad input, missing object, unreachable service)."""


class InputError(ErrorMapError):
    """Bad input data: names the file and line and what was wrong."""

    def __init__(self, path: str, line: int | None, message: str):
        self.path, self.line, self.message = path, line, message
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
