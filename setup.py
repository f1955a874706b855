#!/usr/bin/env python3
"""Installs speechbrain_ast, the Audio Spectrogram Transformer for SpeechBrain.

The supported ranges are declared here; ``constraints.txt`` pins the set that
CI tests (``pip install -c constraints.txt -e .[test]``).
"""

from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="speechbrain_ast",
    version="0.2.0",
    description="Audio Spectrogram Transformer (AST) for SpeechBrain",
    long_description=long_description,
    long_description_content_type="text/markdown",
    packages=find_packages(include=["speechbrain_ast", "speechbrain_ast.*"]),
    package_data={"speechbrain_ast": ["label_files/*.csv", "label_files/*.md"]},
    python_requires=">=3.11",
    install_requires=[
        "torch>=2.3",
        "torchaudio>=2.3",
        "torchvision>=0.18",
        "speechbrain>=1.0,<1.2",
        "hyperpyyaml>=1.2",
        "timm>=0.9,<2",
        "sentencepiece>=0.1.99",
        "soundfile>=0.12",
        "numpy>=1.23",
        "safetensors>=0.4",
        "huggingface_hub>=0.20",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "hypothesis>=6",
            "transformers>=4.40",
            "scikit-learn>=1.2",
            "scipy>=1.10",
            "ruff>=0.12",
            "codespell>=2.3",
            "yamllint>=1.30",
            "matplotlib>=3.5",
            # upstream SpeechBrain's pre-commit hooks and coverage command
            # on the contribution (scripts/upstream_checks.sh)
            "pre-commit-hooks>=4",
            "pytest-cov>=4",
            # sound event evaluation and live tagging (fake input device)
            "sed_scores_eval>=0.0.4",
            "sed_eval>=0.2",
            "setuptools<81",
            "sounddevice>=0.4",
        ],
        # tag --plot and the benchmark plots
        "plot": ["matplotlib>=3.5"],
        # WebDataset tar shards (speechbrain_ast.data.shards, AudioSet)
        "shards": ["webdataset>=1.0"],
        # sound event detection: PSDS (sed_scores_eval), event- and
        # segment-based F1 (sed_eval; its dcase_util imports pkg_resources,
        # which setuptools 81 removed)
        "events": ["sed_scores_eval>=0.0.4", "sed_eval>=0.2", "setuptools<81"],
        # tag --stream from a microphone (needs the PortAudio library)
        "stream": ["sounddevice>=0.4"],
        # ONNX export and the ONNX Runtime / OpenVINO backends of tag
        "deploy": [
            "onnx>=1.16",
            "onnxscript>=0.1",
            "onnxruntime>=1.18",
            "openvino>=2024.0",
        ],
    },
    license="Apache-2.0",
)
