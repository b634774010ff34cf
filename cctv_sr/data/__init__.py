"""Data shared by evaluation and training: degradations, synthetic clips, LFW-style face sets."""
