"""WebDataset tar shards of audio clips: writing and checking them
(``write``), reading a split's folder and its samples (``read``), the
exact streaming plan over DDP ranks and workers (``stream``) and its
checkpointed DataLoader (``loader``).

One folder per split holds ``shard-000000.tar`` ..., ``index.json`` (clips
per shard and in total) and ``clips.csv`` (position, ID, labels, duration,
shard: what the balanced sampler's weights are computed from without
reading a shard).
"""

from speechbrain_ast.data.shards.loader import ShardLoader, make_shard_loaders
from speechbrain_ast.data.shards.read import (
    INDEX_FILE,
    DecodeClip,
    load_index,
    read_clip_list,
    read_shard,
    shard_name,
)
from speechbrain_ast.data.shards.stream import ShardStream, balanced_repeats
from speechbrain_ast.data.shards.write import (
    verify_shard,
    write_shard,
    write_shards,
)

__all__ = [
    "INDEX_FILE",
    "DecodeClip",
    "ShardLoader",
    "ShardStream",
    "balanced_repeats",
    "load_index",
    "make_shard_loaders",
    "read_clip_list",
    "read_shard",
    "shard_name",
    "verify_shard",
    "write_shard",
    "write_shards",
]
