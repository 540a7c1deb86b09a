"""Every speed and quality benchmark behind `tools/benchmark.py` and its report tables: model and training-step
throughput (`model_speed`, `train_step`), CPU inference routes and the data pipeline (`cpu_routes`, `cpu`), int8 on
trained weights (`int8`) and demo schedules (`demo`). The top floor: nothing in the library imports it."""
