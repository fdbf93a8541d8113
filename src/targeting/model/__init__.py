"""The fitted model: features + LightGBM + calibration, its explanations (TreeSHAP) and its drift profile."""
