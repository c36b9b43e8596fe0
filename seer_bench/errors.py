"""One exception type for bad input, so the CLI can print one line and exit non-zero before any work."""


class ConfigError(ValueError):
    """Bad user input: unknown name, malformed suite file, impossible budget. The message names the culprit."""
