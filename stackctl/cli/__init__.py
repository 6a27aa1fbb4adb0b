"""The CLI layer: parse arguments, call the core, display the result. Nothing else."""
