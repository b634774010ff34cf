"""Identity: the gallery of people searched for, per-track matching and the identity sink."""
