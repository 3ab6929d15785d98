"""Batch scoring with the model in production, and monitoring of those predictions."""
from __future__ import annotations

import luigi

from pipeline import evaluation, monitoring, registry, scoring, training
from pipeline.dataset import DAY_COLUMN
from tasks.config import limit_threads
from tasks.base import DailyTask, dataset, read_frame, st
from tasks.features import FeaturePartition
from tasks.model import deployment_lineage, load_live, with_production


class Predictions(DailyTask):
    """The day's rows scored by the model that was in production before that day."""

    def requires(self):
        return with_production(self.date, {"features": FeaturePartition(date=self.date)})

    def output(self):
        return self.store.file(self.store.partition("predictions", dataset.name, self.date,
                                                    deployment_lineage(self.date)), "part-0.parquet")

    @limit_threads
    def run(self):
        model, version = load_live(self.store, self.date)
        keys = [DAY_COLUMN] + dataset.key_columns
        features = st.read_parquet(self.input()["features"], columns=list(dict.fromkeys(keys + dataset.features)))
        scored = scoring.score_partition(model, features, dataset.numeric_features,
                                         dataset.categorical_features, keys, version, task=dataset.task)
        st.write_parquet(self.output(), scored)
        self.status(f"{len(scored)} rows scored by {version or 'no model (none in production yet)'}", 100)


class monitor(luigi.Config):  # noqa: N801 - [monitor] section
    feature_psi = luigi.FloatParameter(
        default=0.25, description="Alert when the PSI of a per-row feature ([features] drift_alert of the dataset) "
                                  "exceeds this")
    prediction_psi = luigi.FloatParameter(
        default=2.0, description="Alert when the PSI of the day's predictions vs the training scores exceeds this")
    min_auc = luigi.FloatParameter(default=0.50, description="Binary: alert when the day's realized ROC AUC is below this")
    min_r2 = luigi.FloatParameter(
        default=0.0, description="Regression: alert when the day's realized R2 against the naive baseline (the "
                                 "model's training mean) is below this")
    fail_on_alert = luigi.BoolParameter(
        default=False, parsing=luigi.BoolParameter.EXPLICIT_PARSING,
        description="`mlpipe run` exits with MONITORING_ALERT (50) when the day's monitoring raised an alert "
                    "and nothing else failed")


class ModelMonitoring(DailyTask):
    """Realized metrics of the day's predictions, feature and prediction drift, and alerts."""

    def requires(self):
        return {"predictions": Predictions(date=self.date), "features": FeaturePartition(date=self.date)}

    def output(self):
        m = monitor()
        limits = {"min_auc": m.min_auc} if dataset.task == "binary" else {"min_r2": m.min_r2}
        phash = st.param_hash(lineage=deployment_lineage(self.date), feature_psi=m.feature_psi,
                              prediction_psi=m.prediction_psi, **limits)
        return self.store.file(self.store.partition("monitoring", dataset.name, self.date, phash),
                               "monitoring.json")

    @limit_threads
    def run(self):
        predictions = st.read_parquet(self.input()["predictions"], columns=["score", "model_version"])
        version = predictions["model_version"].dropna().unique().tolist()
        if not version:
            st.write_json(self.output(), {"date": self.date.isoformat(), "model_version": None,
                                          "alerts": [], "note": "no model in production before this day"})
            self.status("nothing to monitor: no model was in production before this day", 100)
            return
        target = dataset.target.name
        features = read_frame(self.input()["features"], dataset.features + [target])
        manifest = registry.Registry(self.store).manifest(version[0])
        m = monitor()
        result = monitoring.monitor_day(
            predictions["score"].to_numpy(float), features[target].to_numpy(float),
            training.feature_matrix(features, dataset.numeric_features, dataset.categorical_features),
            manifest["reference_profile"], dataset.drift_alert_features, m.feature_psi, m.prediction_psi,
            m.min_auc, task=dataset.task, baseline=manifest.get("target_mean"), min_r2=m.min_r2)
        st.write_json(self.output(), {"date": self.date.isoformat(), "model_version": version[0],
                                      "alert_features": dataset.drift_alert_features, **result})
        metric = evaluation.HEADLINE_METRIC[dataset.task]
        value = result["realized"].get(metric)
        self.status(f"realized {metric} {value if value is None else round(value, 4)}; "
                    + (f"ALERTS: {'; '.join(result['alerts'])}" if result["alerts"] else "no alerts"), 100)
