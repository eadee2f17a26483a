"""Face swap: detection, identity, the swap itself (insightface or the classic dlib engine), live tracking.

Importing this package is cheap: :mod:`workers.face_swap.options` and :mod:`workers.face_swap.mark`
load no model runtime. dlib, onnxruntime and insightface are imported only when an engine loads,
on the thread that will use it.
"""
