"""Models: manifests, weight resolution and download, the backend registry, ONNX runtime."""
