"""Executing compiled models: binding inputs, the reference interpreter, assembling TensorMaps."""
