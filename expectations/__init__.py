"""Great Expectations quality gates on the lakehouse layers.

`gx/` is a GX 1.x file context (suites, validation definitions and checkpoints, one per
table); `checks` adds the check columns that array-valued tables need, `validate` runs the
checkpoints on pinned snapshots and records the results, `records` is what other stages ask
("is this gold snapshot validated?").
"""
