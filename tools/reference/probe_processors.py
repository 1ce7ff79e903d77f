"""Reports which image processor class transformers picks by default for each family, and whether it is the
torchvision-based ("fast") or the PIL-based one. Run on the reference machine: python3 tools/reference/probe_processors.py
"""

import transformers
from transformers import AutoImageProcessor, Gemma3ImageProcessor, Qwen2VLImageProcessor

print("transformers", transformers.__version__)
for name in ["Gemma3ImageProcessor", "Gemma3ImageProcessorFast", "Gemma4ImageProcessor", "Gemma4ImageProcessorFast",
             "Qwen2VLImageProcessor", "Qwen2VLImageProcessorFast", "Qwen3VLImageProcessor", "Qwen3VLImageProcessorFast"]:
    print(name, hasattr(transformers, name))
for model_type in ["gemma3", "gemma4", "qwen3_vl"]:
    try:
        from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES
        print(model_type, IMAGE_PROCESSOR_MAPPING_NAMES.get(model_type))
    except Exception as e:  # noqa: BLE001
        print(model_type, "error", e)
