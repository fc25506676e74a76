"""The super-resolution literature's evaluation protocol: MATLAB bicubic, PSNR, SSIM, per image.

As in the SRGAN, EDSR and RCAN papers (and their MATLAB scripts):

1. the HR image is cropped to a multiple of the scale (bottom/right edges);
2. its LR is made by MATLAB ``imresize(hr, 1/scale, 'bicubic')``: the cubic kernel (a = -0.5),
   widened by the scale for antialiasing, symmetric edge handling, rounded to 8 bits
   (:mod:`~harness.measures.bicubic`);
3. the model's output is clipped and rounded to 8 bits;
4. PSNR and SSIM are computed on the Y channel of ITU-R BT.601 YCbCr (studio swing, 16..235,
   not rounded), after cropping ``scale`` pixels from each border; RGB PSNR is also reported
   (:mod:`~harness.measures.quality`, per image and mean in :mod:`~harness.measures.scoring`).

Each metric plugin is measured on the images its declaration asks for
(:class:`harness.plugin_api.metrics.MetricProtocol`). This room is NumPy and scikit-image only:
training, deploy and evaluation import it; it imports only ``harness.data.images``,
``harness.plugin_api.metrics`` and ``harness.errors``.
"""
