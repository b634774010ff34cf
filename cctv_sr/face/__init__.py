"""Faces as pictures: canonical alignment (:mod:`.align`) and quality scores (:mod:`.quality`)."""
