"""Models: manifests and ModelSpec, weight resolution and download, the backend registry.

``manifest`` (what a model is), ``spec`` (how to feed it), ``resolve`` (where its files are),
``download`` (fetching them), ``registry`` (backends by name, built the same way), ``catalog``
(``cctv-sr models``) and ``ort`` (onnxruntime, imported lazily).
"""
