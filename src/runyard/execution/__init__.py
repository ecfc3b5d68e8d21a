"""Running workers: one OS process per run, its interpreter, its channel and its limits."""
