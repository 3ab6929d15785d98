"""Batch scoring with the model in production, and monitoring of those predictions."""
from __future__ import annotations

from pipeline import monitoring, scoring
from pipeline import storage as st
from pipeline.dataset import DAY_COLUMN
from pipeline.estimators import feature_matrix
from pipeline.layout import MONITORING_FILE, PART_FILE
from pipeline.metrics import naive_baseline
from pipeline.partitions import read_frame
from tasks import notify
from tasks.base import DailyTask, Lineage, Sealed, significant_params
from tasks.config import MonitorConfig, current_dataset, model_registry
from tasks.features import FeaturePartition
from tasks.model import Deployment, load_live, with_production
from tasks.threads import limit_threads


class Predictions(Lineage, Sealed, DailyTask):
    """The day's rows scored by the model that was in production before that day."""

    def requires(self):
        return with_production(self.date, {"features": FeaturePartition(date=self.date)})

    def lineage_inputs(self) -> list:
        # The deployment chain that chooses the model (its lineage is the same on every day, so the
        # first deployed day, which has no decision before it, shares the other days' path).
        return [FeaturePartition(date=self.date), Deployment(date=self.date)]

    def directory(self) -> str:
        return self.store.partition("predictions", current_dataset().name, self.date, self.lineage)

    def data(self):
        return self.file(PART_FILE)

    @limit_threads
    def run(self):
        data = current_dataset()
        self.status("loading the production model and the day's features", 10)
        model, version = load_live(self.store, self.date)
        keys = [DAY_COLUMN] + data.key_columns
        features = st.read_parquet(self.requires()["features"].data(), columns=list(dict.fromkeys(keys + data.features)))
        self.status(f"scoring {len(features)} rows", 40)
        scored = scoring.score_partition(model, features, data.numeric_features,
                                         data.categorical_features, keys, version, data.problem)
        self.status(f"writing {len(scored)} scores", 85)
        self.seal({self.data(): st.write_parquet(self.data(), scored)})
        self.status(f"{len(scored)} rows scored by {version or 'no model (none in production yet)'}", 100)


class ModelMonitoring(Lineage, Sealed, DailyTask):
    """Realized metrics of the day's predictions, feature and prediction drift, and alerts."""

    def requires(self):
        return {"predictions": Predictions(date=self.date), "features": FeaturePartition(date=self.date)}

    def lineage_facts(self) -> dict:
        return {"thresholds": significant_params(MonitorConfig())}

    def directory(self) -> str:
        return self.store.partition("monitoring", current_dataset().name, self.date, self.lineage)

    def data(self):
        return self.file(MONITORING_FILE)

    @limit_threads
    def run(self):
        req = self.requires()
        self.status("reading the day's predictions", 10)
        predictions = st.read_parquet(req["predictions"].data(), columns=["score", "model_version"])
        versions = predictions["model_version"].dropna().unique().tolist()
        if not versions:
            self.seal({self.data(): st.write_json(self.data(), monitoring.nothing_to_monitor(self.date))})
            self.status("nothing to monitor: no model was in production before this day", 100)
            return
        data, m = current_dataset(), MonitorConfig()
        self.status(f"reading the day's features and outcomes for {versions[0]}", 30)
        features = read_frame(req["features"].data(), data.features + [data.target.name])
        manifest = model_registry(self.store).manifest(versions[0])
        self.status(f"realized metrics and drift of {len(predictions)} scored rows", 60)
        result = monitoring.monitor_day(
            predictions["score"].to_numpy(float), features[data.target.name].to_numpy(float),
            feature_matrix(features, data.numeric_features, data.categorical_features),
            manifest["reference_profile"], data.drift_alert_features, m.feature_psi, m.prediction_psi,
            m.min_auc, data.problem, baseline=naive_baseline(manifest), min_r2=m.min_r2)
        record = {"date": self.date.isoformat(), "model_version": versions[0],
                  "alert_features": data.drift_alert_features, **result}
        self.seal({self.data(): st.write_json(self.data(), record)})
        self.status(monitoring.status_line(record, data.problem), 100)
        notify.send_monitoring(record)  # monitoring_alert, when it raised alerts
