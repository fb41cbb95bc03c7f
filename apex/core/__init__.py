"""Infrastructure shared by every command: the error contract and CLI guard, config schema and identities, secrets,
paths, file locks, lazy imports and the tracking pre-flight. Nothing here knows a pipeline stage's behaviour."""
