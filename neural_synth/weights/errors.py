"""The one exception type of weight porting and loading."""


class WeightFormatError(ValueError):
    """A weights file or ported checkpoint is missing, corrupt, or of the wrong kind.

    The message names the file or tensor at fault and, where there is one, the fix
    (e.g. "use --arch vgg16"). Command-line tools print it as one line.
    """
