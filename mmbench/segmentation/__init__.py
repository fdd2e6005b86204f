"""The dense task: RGB-D semantic segmentation with missing modalities (issue 20).

This package is the segmentation path, beside the classification one (``mmbench.data``,
``mmbench.models``, ``mmbench.metrics``); each module here has one job:

* :mod:`~mmbench.segmentation.metrics` -- confusion matrix, mIoU with a void index, pixel accuracy,
  the summary over modality combinations (mean and worst);
* :mod:`~mmbench.segmentation.class_weights` -- median-frequency class weights from the train split;
* :mod:`~mmbench.segmentation.blocks` -- ESANet's building blocks (NonBottleneck1D, SE-add fusion,
  pyramid pooling, learned upsampling);
* :mod:`~mmbench.segmentation.backbone` -- one ResNet-34 branch per modality (torchvision's, or with
  NonBottleneck1D blocks), optional user-file weights;
* :mod:`~mmbench.segmentation.esanet` -- the two-branch ESANet-style network with a modality mask;
* :mod:`~mmbench.segmentation.evaluate` -- class-weighted cross-entropy, scores per modality combination;
* :mod:`~mmbench.segmentation.procedural` -- an offline procedural RGB-D data set;
* :mod:`~mmbench.segmentation.nyuv2` -- NYUv2's labelled .mat with the user's mapping and split files.

Not wired into the CLI, the grid or the run key yet (see ``docs/segmentation.md``).
"""
