"""Training, evaluation and export of the road-damage detector.

The only package that imports ultralytics and torch, and only inside functions, after
:func:`training.offline.configure_offline` has made ultralytics work without a network.
"""
