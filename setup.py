from setuptools import find_packages, setup

setup(
    name="hrnet_pose",
    version="0.1.0",
    description="Top-down human pose estimation with HRNet: official-compatible, pip-only, modern training",
    package_dir={"": "lib"},
    packages=find_packages("lib"),
    package_data={"hrnet_pose": ["keypoint_sets/*.yaml"]},  # the built-in public keypoint sets (keypoints.py)
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.0,<3",
        "torchvision>=0.15,<1",
        "numpy>=1.23,<3",
        "opencv-python-headless>=4.6",
        "pycocotools>=2.0.6,<3",
        "albumentations>=1.3,<3",
        "yacs>=0.1.8,<0.2",
        "tensorboard>=2.10,<3",
        "tqdm>=4.60,<5",
        "pyyaml>=5.4",
        "scipy>=1.8",  # MPII: gt_<set>.mat and pred.mat (MATLAB files of the official MPII protocol)
    ],
    extras_require={
        "dev": ["pytest>=7", "onnx>=1.14", "onnxruntime>=1.16", "faster-coco-eval>=1.5", "orjson>=3.9"],
        # orjson writes a 100k-prediction results json ~3x faster; the evaluator falls back to json without it
        "fast-eval": ["faster-coco-eval>=1.5", "orjson>=3.9"],
        "onnx": ["onnx>=1.14", "onnxruntime>=1.16"],  # tools/export.py and .onnx weights (onnxruntime-gpu for CUDA)
    },
)
