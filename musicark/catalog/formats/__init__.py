"""Input formats of `catalog import`: detection and readers yielding interchange batches."""

from musicark.catalog.formats.detect import FORMATS, detect_format
from musicark.catalog.formats.readers import Chunk, read_batches

__all__ = ["FORMATS", "Chunk", "detect_format", "read_batches"]
