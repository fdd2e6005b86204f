"""Layout scanners: read a field data set's list files where it lies, decode nothing.

``SCANNERS[name](root, **settings) -> Layout``; the prepare step decodes the files a layout names.
"""
from mmbench.data.layouts.ave import scan_ave
from mmbench.data.layouts.casia_surf import scan_casia_surf
from mmbench.data.layouts.common import Clip, Layout, LayoutError
from mmbench.data.layouts.kinetics_sounds import scan_kinetics_sounds
from mmbench.data.layouts.ucf101 import scan_ucf101
from mmbench.data.layouts.vggsound import scan_vggsound

SCANNERS = {"ave": scan_ave, "kinetics-sounds": scan_kinetics_sounds, "vggsound": scan_vggsound,
            "ucf101": scan_ucf101, "casia-surf": scan_casia_surf}

__all__ = ["SCANNERS", "Clip", "Layout", "LayoutError", "scan_ave", "scan_casia_surf", "scan_kinetics_sounds",
           "scan_ucf101", "scan_vggsound"]
