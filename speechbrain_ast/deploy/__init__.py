"""Deployment on CPUs: ONNX export and runtimes (``onnx``), int8 dynamic
quantization (``quantize``), bf16/fp16 inference (``precision``)."""
