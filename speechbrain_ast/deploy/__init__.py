"""Deployment on CPUs: ONNX export (``onnx``) and its runtimes
(``onnx_runtime``), int8 dynamic quantization (``quantize``), bf16/fp16
inference (``precision``)."""
