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
* :mod:`~mmbench.segmentation.esanet_pme`, :mod:`~mmbench.segmentation.shaspec_net` -- DMRNet's and
  ShaSpec's networks on ESANet's parts;
* :mod:`~mmbench.segmentation.evaluate` -- class-weighted cross-entropy, scores per modality combination;
* :mod:`~mmbench.segmentation.procedural` -- an offline procedural RGB-D data set;
* :mod:`~mmbench.segmentation.nyuv2` -- NYUv2's labelled .mat with the user's mapping and split files;

and its place in the harness (a data set registered with ``task="segmentation"`` runs here; the
classification path hands it over at four points: ``run``, ``Runner.run``, ``run_identity`` and the
grid's ``check_specs``):

* :mod:`~mmbench.segmentation.dataset` -- what a segmentation data set holds, the validation carve;
* :mod:`~mmbench.segmentation.datasets` -- the registered data sets (``procedural-rgbd``);
* :mod:`~mmbench.segmentation.settings` -- the run settings and their resolution;
* :mod:`~mmbench.segmentation.methods` -- the methods' segmentation forms and their registry (``dmrnet``,
  ``shaspec`` and ``mmanet`` in :mod:`~mmbench.segmentation.methods_dmrnet`,
  :mod:`~mmbench.segmentation.methods_shaspec` and :mod:`~mmbench.segmentation.methods_mmanet`);
* :mod:`~mmbench.segmentation.teacher` -- a method's teacher run (``joint`` under ``complete``), trained
  once with a checkpoint and keyed into the student's identity;
* :mod:`~mmbench.segmentation.train` -- training with validation selection, the test per combination;
* :mod:`~mmbench.segmentation.runner` -- the run identity (key) and the stored result;
* :mod:`~mmbench.segmentation.cli_run`, :mod:`~mmbench.segmentation.card`,
  :mod:`~mmbench.segmentation.table` -- ``run``, ``show`` and the leaderboard section.

See ``docs/segmentation.md``.
"""
