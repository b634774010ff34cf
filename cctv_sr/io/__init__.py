"""Inputs and outputs: video sources (files, RTSP) and the sinks that write a run into OUTDIR."""
