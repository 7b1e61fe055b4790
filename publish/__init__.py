"""Publishing pinned lakehouse snapshots in other table formats (Delta Lake, with delta-rs)."""
