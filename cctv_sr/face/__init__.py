"""Faces as pictures: canonical alignment (:mod:`.align`), quality scores (:mod:`.quality`)
and the drawing helpers shared by every picture the project makes (:mod:`.draw`)."""
