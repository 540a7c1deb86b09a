"""Video and camera plumbing for the inference product: frame sources (files, folders, cameras, HTTP/RTSP with a
latest-frame live reader), pose tracking and smoothing, and the atomic video writer. Knows nothing of models: the
stream estimator in `hrnet_pose.apis` composes these with a pose estimator."""
