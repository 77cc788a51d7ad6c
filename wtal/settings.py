"""The typed settings of the train and infer stages (plain dataclasses, no torch).

``TrainSettings`` is what trains (with the model's ``args``); ``InferSettings`` is what only
infers: changing it reruns the infer stage and what follows, never training.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings shared by the localizers."""

    epochs: int = 100  # passes over the training videos
    batch_size: int = 16  # videos per step
    lr: float = 1e-4  # Adam learning rate
    lr_milestones: tuple[int, ...] = ()  # epochs at which the lr is multiplied by lr_gamma
    lr_gamma: float = 0.1  # factor of each lr step
    weight_decay: float = 5e-4  # Adam weight decay
    max_seqlen: int = 750  # longer sequences are randomly cropped to this many snippets
    loss: str = "bce"  # video-level loss: bce or softmax
    feature_norm: str = "standardize"  # standardize (train-set mean/std) or none
    seed: int = 0  # seeds the initialisation, shuffling and cropping
    sampling: str = "all"  # all (random crops of max_seqlen) | uniform | sparse | shot
    num_segments: int = 750  # K units per sampled training sequence (wtal.sampling)
    feature_length: int | None = None  # rescale every sequence to this length (train and test)
    optimizer: str = "adam"  # adam or sgd
    momentum: float = 0.9  # sgd only


@dataclass(frozen=True)
class InferSettings:
    """Post-processing settings."""

    class_threshold: float = 0.2  # localise classes whose video score reaches this
    cas_thresholds: tuple[float, ...] = field(
        default=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    )  # levels on the min-max normalised CAS
    inflation: float = 0.25  # outer band of the outer-inner contrast, fraction of the length
    video_score_weight: float = 0.2  # weight of the video-level score in a segment's confidence
    nms: str = "soft"  # soft (Gaussian, Eq. 7), hard, or none
    nms_iou: float = 0.5  # θ of Eq. (7) / IoU threshold of hard NMS
    soft_nms_epsilon: float = 0.75  # ε of Eq. (7)
    max_per_video: int = 100  # detections kept per video (over all classes)
