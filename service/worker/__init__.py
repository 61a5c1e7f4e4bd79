"""Background processing: the job queue, the frame pipeline, association, the janitor, retention."""
