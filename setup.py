from setuptools import find_packages, setup

setup(
    name="hrnet_pose",
    version="0.1.0",
    description="Top-down human pose estimation with HRNet: official-compatible, pip-only, modern training",
    package_dir={"": "lib"},
    packages=find_packages("lib"),
    python_requires=">=3.9",
    # the built-in public keypoint sets (keypoints.py) and the webcam page (no CDN) ship inside the package
    package_data={"hrnet_pose": ["keypoint_sets/*.yaml"], "hrnet_pose.serve": ["static/*"]},
    entry_points={"console_scripts": ["hrnet-pose-serve=hrnet_pose.serve.cli:console_main"]},
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
        "dev": ["pytest>=7", "onnx>=1.14", "onnxruntime>=1.16", "faster-coco-eval>=1.5", "orjson>=3.9",
                # serve tests: the serve extra, an HTTP and a WebSocket client, the browser driver (system chromium)
                "fastapi>=0.110", "uvicorn>=0.29", "python-multipart>=0.0.9", "prometheus-client>=0.20",
                "httpx>=0.27", "websockets>=12", "playwright>=1.40",
                # tools/infer.py --ray tests (a local Ray with 2 CPUs), so the README's one install runs them too
                "ray[data]>=2.40"],
        # orjson writes a 100k-prediction results json ~3x faster; the evaluator falls back to json without it
        "fast-eval": ["faster-coco-eval>=1.5", "orjson>=3.9"],
        "onnx": ["onnx>=1.14", "onnxruntime>=1.16"],  # tools/export.py and .onnx weights (onnxruntime-gpu for CUDA)
        # tools/infer.py --ray (a Ray Data job); ~500 MB with pyarrow and pandas
        "ray": ["ray[data]>=2.40"],
        # tools/serve.py (hrnet-pose-serve): the HTTP service, its uploads and its metrics
        "serve": ["fastapi>=0.110", "uvicorn>=0.29", "websockets>=12", "python-multipart>=0.0.9", "prometheus-client>=0.20"],
    },
)
