"""Background removal: rembg model sessions, compositing, image files, batches, video and live.

Importing this package is cheap; the model runtimes (rembg, onnxruntime) are imported only by
:mod:`workers.matting.engine` when an engine loads, on the thread that will use it.
"""
