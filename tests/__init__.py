"""The test suite (a package, so that spawned DDP workers import its
modules by name before any other installed ``tests`` package)."""
