"""vitnas: training-free NAS for Vision Transformers, and adaptive token length inference."""

__version__ = "0.1.0"
