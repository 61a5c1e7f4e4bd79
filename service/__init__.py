"""Roadwatch service: locating, ranking and storing road-damage detections."""
