"""Background removal: model sessions on onnxruntime, alpha matting, compositing, image files, batches, video and live.

Importing this package is cheap; the model runtime (onnxruntime) is imported only by
:mod:`workers.matting.engine` when an engine loads, on the thread that will use it.
"""
