"""One base class for the errors a user can act on.

Every entry point (train.py, demo.py, quickstart.py, the toolbox scripts, the benchmarks) catches
`CAPFError` and prints its message as one line, exit status 2: the message names the file, key or
record at fault and what to do. Any other exception is a bug and keeps its traceback.
"""


class CAPFError(Exception):
    """An error caused by the user's input or environment; its message says what to change.

    Raised in a DataLoader worker, it reaches the main process as the same class built from
    PyTorch's "Caught ... in DataLoader worker process N" text with the worker's traceback:
    str() gives back the worker's own one-line message."""

    def __str__(self):
        text = super().__str__()
        if text.startswith("Caught ") and "Original Traceback" in text:
            last = text.rstrip().splitlines()[-1]     # "module.ClassName: the message"
            name, _, message = last.partition(": ")
            if message and name.rsplit(".", 1)[-1] == type(self).__name__:
                return message
        return text


class DeviceError(CAPFError):
    """A device that was asked for is not there (e.g. --device cuda without a visible GPU)."""


def run_main(main, program):
    """`main()` of a command-line program: a CAPFError ends it with one line (no traceback) and
    exit status 2; otherwise its return value (None -> 0) is the status."""
    import sys
    try:
        return main() or 0
    except CAPFError as error:
        print("%s: error: %s" % (program, error), file=sys.stderr)
        return 2
