"""User-facing errors: the CLI prints them as one paragraph and exits with code 2."""


class BenchmarkError(Exception):
    """A problem with the user's input (files, names, options), not a bug in the suite."""


class DataFormatError(BenchmarkError):
    """A raw data file does not have the expected format."""

    def __init__(self, path: object, line: int | None, expected: str, found: str | None = None) -> None:
        where = f"{path}" + (f", line {line}" if line is not None else "")
        message = f"{where}: expected {expected}"
        if found is not None:
            message += f", found {found!r}"
        super().__init__(message + ".")
        self.path = path
        self.line = line
