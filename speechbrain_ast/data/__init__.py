"""Audio in: reading files with errors that name them (``audio``), the
prepare scripts' shared checks (``prepare``), WebDataset tar shards."""
