"""Audio in: decoding files, bytes and windows with errors that name them
(``audio``), the prepare scripts' shared checks (``prepare``), WebDataset
tar shards (``shards``)."""
