"""The engine: analysis stage, accelerator stage and its batcher, pipeline threads, building
backends from config, and ``run_footage``."""
