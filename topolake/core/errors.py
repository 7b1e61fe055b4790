"""The one error type every stage raises when its input or configuration is wrong.

Each stage subclasses it (`IngestArgumentError`, `SnapshotRefused`, `BuildError`, ...), so the
application needs one handler: print the message, which is one sentence naming the file or
value and the problem, and exit with `exit_code` (2 for a wrong argument or setting, 1 for a
failure of the work itself).
"""


class TopolakeError(Exception):
    """A stage refused or failed; the message says what and what to do."""

    exit_code = 1


class UsageError(TopolakeError):
    """An argument or setting cannot be used as given."""

    exit_code = 2
