"""The one exception type the command line turns into a readable error message."""


class MdeMmrecError(Exception):
    """A user-facing error: the message names the file, the field and the fix."""
