"""Raw video to snippet features: decoding, TV-L1 flow, backbones, the snippet grid."""

__version__ = "0.1.0"
