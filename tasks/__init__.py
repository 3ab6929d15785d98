"""Luigi tasks of the nightly pipeline (`luigi --module tasks NightlyPipeline --date ...`)."""
from tasks.data import CleanPartition, CleanReference, LandingFile, RawPartition, RawReference
from tasks.features import FeaturePartition
from tasks.model import CandidateModel, Deployment, ModelEvaluation
from tasks.nightly import NightlyPipeline, NightlyRange
from tasks.serving import ModelMonitoring, Predictions
from tasks.waiting import LandingWait

__all__ = ["LandingFile", "RawPartition", "RawReference", "CleanPartition", "CleanReference",
           "FeaturePartition", "CandidateModel", "ModelEvaluation", "Deployment", "Predictions",
           "ModelMonitoring", "NightlyPipeline", "NightlyRange", "LandingWait"]
