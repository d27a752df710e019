"""What a network needs to know about its input data."""

from __future__ import annotations

from dataclasses import dataclass

from nas.core.errors import ConfigError


@dataclass(frozen=True)
class DataSpec:
    """The input a network is built for."""

    in_channels: int  # image channels (1 for grey, 3 for RGB)
    num_classes: int
    image_size: int  # square images, height == width

    def input_shape(self, batch_size: int = 1) -> tuple[int, int, int, int]:
        return (batch_size, self.in_channels, self.image_size, self.image_size)


def check_data_spec(data: object) -> DataSpec:
    """``data`` if it is a DataSpec of positive ints; ``ConfigError`` otherwise."""
    if not isinstance(data, DataSpec):
        raise ConfigError(f"data must be a DataSpec, got {type(data).__name__}.")
    for field in ("in_channels", "num_classes", "image_size"):
        value = getattr(data, field)
        if type(value) is not int or value < 1:
            raise ConfigError(f"data.{field} must be an integer >= 1, got {value!r}.")
    return data
